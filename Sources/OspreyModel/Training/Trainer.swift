import Dispatch
import Foundation
import OspreyMath

/// Fits the first version of a model from ratings (or a later one from ratings plus the log):
/// explicit-feedback ALS with mean and biases, λ chosen by validation unless given, and each
/// user's ridge statistics so online learning continues exactly where training stopped.
public struct Trainer: Sendable {
    /// Training settings.
    public struct Configuration: Sendable {
        /// Latent factors d.
        public var factors: Int
        /// The ridge penalty; nil chooses it from ``lambdaCandidates`` by validation.
        public var lambda: Float?
        /// With a given ``lambda``: scale each user's and item's penalty by its rating count.
        public var scaleLambda: Bool
        public var iterations: Int
        public var seed: UInt64
        public var threads: Int
        /// Candidates tried when λ is chosen by validation: fixed penalties, and penalties scaled
        /// by each row's rating count (ALS-WR). Neither kind fits every data set (a fixed λ suits
        /// sparse MovieLens-like data, a scaled one dense data with many factors), so both compete.
        public var lambdaCandidates: [Regularization]
        /// The share of each user's latest ratings held out to choose λ.
        public var validationShare: Double
        /// When λ is chosen by validation: search near this one (a retrain's parent's choice)
        /// instead of trying every candidate — it, a half-step either side on the log scale, then
        /// on past the better side while that keeps improving (3 to 6 fits, against 9).
        public var lambdaNear: Regularization?
        /// Fit user and item bias terms (folded into the vectors: weights `[p_u; c_u]`, features
        /// `[q_i; 1]`, offsets `μ + b_i`); false fits plain `μ + p_u · q_i`.
        public var biases: Bool

        public init(factors: Int = 20, lambda: Float? = nil, scaleLambda: Bool = false, iterations: Int = 10,
                    seed: UInt64 = 1, threads: Int = 2, lambdaCandidates: [Regularization] = Regularization.candidates,
                    validationShare: Double = 0.1, biases: Bool = true, lambdaNear: Regularization? = nil) {
            self.biases = biases
            self.lambdaNear = lambdaNear
            self.factors = factors
            self.lambda = lambda
            self.scaleLambda = scaleLambda
            self.iterations = iterations
            self.seed = seed
            self.threads = threads
            self.lambdaCandidates = lambdaCandidates
            self.validationShare = validationShare
        }
    }

    /// A settings error, reported before any work is done.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public let description: String

        /// An error that reports `description` as it is. O(1).
        public init(description: String) {
            self.description = description
        }
    }

    /// A trained version, but for its bootstrap prior (the mean of the stored users' weights,
    /// known once their states are), and the starting state of every user it was trained on.
    public struct Result: Sendable {
        /// The model, the number, θ, the new-user penalty, the metadata and the parent.
        public var model: String, number: Int, createdAt: Date, features: MaterializedFeatures, lambda: Float
        public var metadata: TrainingMetadata, parent: Int?
        /// Users in training order and their ridge statistics, computed a chunk at a time.
        public var users: UserStates
        /// θ's computed part, set by the caller that has the items' attributes (nil: none).
        public var computed: (any ComputedFeatureFunction)?

        /// The version with `prior` as the bootstrap prior.
        public func version(prior: [Float]) -> ModelVersion {
            ModelVersion(model: model, number: number, createdAt: createdAt, features: features, computed: computed, lambda: lambda,
                         prior: prior, metadata: metadata, parent: parent)
        }

        /// The version, with every trained user's weights averaged as its prior, and every user's
        /// state: for models small enough to hold them all (tests, experiments). O(users · d³).
        public func materialized() throws -> (version: ModelVersion, users: [(uid: String, state: RidgeState)]) {
            let users = try self.users.all()
            var prior = PriorMean(dimension: features.dimension)
            for u in users { prior.add(u.state) }
            return (version(prior: prior.mean), users)
        }
    }

    public var configuration: Configuration
    /// Receives one line per step (λ candidates, iterations, RMSE).
    public var log: @Sendable (String) -> Void
    /// Called after each iteration of the final fit with (iteration, iterations).
    public var onIteration: @Sendable (Int, Int) -> Void = { _, _ in }
    /// Called after each fit of a λ candidate with the number of candidates fitted so far.
    public var onLambdaFit: @Sendable (Int) -> Void = { _ in }
    /// Asked between ALS iterations; once it returns true, ``train(model:number:parent:ratings:trainedThroughSeq:)``
    /// stops and throws ``Cancelled``.
    public var isCancelled: @Sendable () -> Bool = { false }

    /// Training stopped because ``isCancelled`` said so.
    public struct Cancelled: Error, CustomStringConvertible {
        public init() {}
        public var description: String { "training was cancelled" }
    }

    public init(configuration: Configuration = .init(), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.log = log
    }

    /// Trains version `number` of `model` on `ratings`; `trigger` says what started it (recorded
    /// in the metadata; ``TrainingMetadata/trigger``).
    /// - Throws: ``ConfigurationError`` for bad settings or no ratings.
    public func train(model: String, number: Int, parent: Int?, ratings: [Rating], trainedThroughSeq: Int64? = nil,
                      trigger: String = "train") throws -> Result {
        let c = configuration
        guard !ratings.isEmpty else { throw ConfigurationError(description: "no ratings to train on") }
        guard c.factors >= 1, c.factors <= 512 else { throw ConfigurationError(description: "--dim must be between 1 and 512") }
        guard c.iterations >= 1, c.iterations <= 1000 else { throw ConfigurationError(description: "--iterations must be between 1 and 1000") }
        if let l = c.lambda, !(l > 0 && l.isFinite) { throw ConfigurationError(description: "--lambda must be a positive number") }
        let start = Date()
        let indexed = IndexedRatings(ratings)
        log("training \(model) v\(number): \(ratings.count) ratings, \(indexed.userIDs.count) users, \(indexed.itemIDs.count) items, d=\(c.factors)")

        var regularization: Regularization
        var selection = "given"
        var validationRMSE: Double?
        if let given = c.lambda {
            regularization = Regularization(lambda: given, scaled: c.scaleLambda)
        } else {
            (regularization, validationRMSE, selection) = chooseLambda(indexed)
            if isCancelled() { throw Cancelled() }
            log(validationRMSE == nil ? selection : "chose \(regularization) by validation (RMSE \(String(format: "%.4f", validationRMSE ?? .nan)))")
        }
        let lambda = regularization.lambda

        let factors = ALS.train(
            userCount: indexed.userIDs.count, itemCount: indexed.itemIDs.count,
            users: indexed.users, items: indexed.items, labels: indexed.labels,
            configuration: .init(dimension: c.factors, lambda: lambda, scaleLambdaByCount: regularization.scaled,
                                 iterations: c.iterations, seed: c.seed, threads: c.threads, biases: c.biases),
            shouldStop: isCancelled
        ) { p in
            self.onIteration(p.iteration, p.iterations)
            self.log("  iteration \(p.iteration)/\(p.iterations): training RMSE \(String(format: "%.4f", p.trainingRMSE)) (\(String(format: "%.1f", p.seconds)) s)")
        }
        if isCancelled() { throw Cancelled() }
        let features = MaterializedFeatures(
            dimension: factors.dimension, ids: indexed.itemIDs, table: factors.itemFeatures,
            offsets: factors.itemBiases.map { factors.mean + $0 })
        let users = UserStates(
            uids: indexed.userIDs,
            ratings: SparseRows(rowCount: indexed.userIDs.count, rows: indexed.users, columns: indexed.items, labels: indexed.labels),
            features: features, regularization: regularization, threads: c.threads)
        let trainingRMSE = factors.rmse(users: indexed.users, items: indexed.items, labels: indexed.labels)
        let metadata = TrainingMetadata(
            factors: c.factors, lambda: lambda, scaledLambda: regularization.scaled, lambdaSelection: selection, iterations: c.iterations, seed: c.seed,
            trainingRMSE: trainingRMSE, validationRMSE: validationRMSE, ratings: ratings.count,
            durationSeconds: Date().timeIntervalSince(start), trainedThroughSeq: trainedThroughSeq, trigger: trigger)
        log("trained \(model) v\(number): training RMSE \(String(format: "%.4f", trainingRMSE)) in \(String(format: "%.1f", metadata.durationSeconds)) s")
        return Result(model: model, number: number, createdAt: Date(), features: features,
                      lambda: regularization.newUserPenalty(medianRatings: indexed.medianRatingsPerUser),
                      metadata: metadata, parent: parent, users: users)
    }

    /// Tries each candidate λ (or searches near ``Configuration/lambdaNear``) on a split that
    /// holds out each user's latest ratings, and returns the best with its validation RMSE and a
    /// record of every candidate's score.
    ///
    /// With no rating to hold out (no user has five), nothing can be validated: it keeps the
    /// parent's choice (or the first candidate) and says so, with no validation RMSE.
    func chooseLambda(_ data: IndexedRatings) -> (Regularization, Double?, String) {
        let c = configuration
        let split = data.splitByTime(holdOut: c.validationShare)
        if split.validation.labels.isEmpty {
            let kept = c.lambdaNear ?? c.lambdaCandidates.first ?? .init(lambda: 5, scaled: false)
            return (kept, nil, "not validated: no user has the 5 ratings a held-out rating needs; kept \(kept)")
        }
        let iterations = min(c.iterations, 6)
        var best: (Regularization, Double) = (c.lambdaNear ?? c.lambdaCandidates.first ?? .init(lambda: 5, scaled: false), .infinity)
        var record: [String] = []
        /// Fits `candidate`; true when it is the best so far.
        @discardableResult
        func score(_ candidate: Regularization) -> Bool {
            if isCancelled() { return false }
            let f = ALS.train(
                userCount: data.userIDs.count, itemCount: data.itemIDs.count,
                users: split.train.users, items: split.train.items, labels: split.train.labels,
                configuration: .init(dimension: c.factors, lambda: candidate.lambda, scaleLambdaByCount: candidate.scaled,
                                     iterations: iterations, seed: c.seed, threads: c.threads, biases: c.biases),
                shouldStop: isCancelled)
            let rmse = f.rmse(users: split.validation.users, items: split.validation.items, labels: split.validation.labels)
            log("  \(candidate): validation RMSE \(String(format: "%.4f", rmse))")
            record.append("\(candidate): \(String(format: "%.4f", rmse))")
            onLambdaFit(record.count)
            guard rmse < best.1 else { return false }
            best = (candidate, rmse)
            return true
        }
        func scaled(_ r: Regularization, _ factor: Float) -> Regularization { .init(lambda: r.lambda * factor, scaled: r.scaled) }
        if let near = c.lambdaNear {
            score(near)
            let down = score(scaled(near, 0.55)), up = score(scaled(near, 1.8))
            // On past the better side while it keeps improving (at most three more steps).
            if let factor: Float = up ? 1.8 : down ? 0.55 : nil {
                for _ in 0..<3 {
                    guard score(scaled(best.0, factor)) else { break }
                }
            }
            let how = "validation near the parent's \(near) on each user's latest \(Int(c.validationShare * 100))%"
            return (best.0, best.1, how + " {" + record.joined(separator: ", ") + "}")
        }
        c.lambdaCandidates.forEach { score($0) }
        // Then one half-step either side of the best on the log scale (the grid steps by ~3×).
        let coarse = best.0
        for factor: Float in [0.55, 1.8] { score(scaled(coarse, factor)) }
        return (best.0, best.1, "validation on each user's latest \(Int(c.validationShare * 100))% {" + record.joined(separator: ", ") + "}")
    }

    /// The mean of the users' weights, the bootstrap prior for new users (Velox §5). O(users·d).
    public static func meanWeights(_ states: [RidgeState], dimension: Int) -> [Float] {
        var mean = PriorMean(dimension: dimension)
        for s in states { mean.add(s) }
        return mean.mean
    }
}
