import Foundation
import OspreyMath
import OspreyModel

/// The online-versus-offline experiment of Velox §4.2: how much of a full retrain's accuracy
/// gain do online updates recover?
///
/// Each user's ratings are split by time: the first half trains the initial model, the next 70%
/// of the rest are streamed as observations (in time order), and the last 30% are held out.
/// Held-out RMSE is reported for the initial model; after online updates of the user weights
/// only (what Velox does: the same exact Sherman–Morrison updates the server runs); after online
/// updates of the user weights and of the items' rows (``ItemWeights``, as Oryx's speed layer
/// does); and after a full retrain on the initial and streamed ratings. Held-out ratings of items
/// the initial model does not know are left out of all of them, so all are scored on the same
/// pairs.
public struct OnlineOfflineExperiment: Sendable {
    /// The experiment's outcome.
    public struct Result: Sendable, Equatable {
        /// Ratings the initial model was trained on (the first half of each user's).
        public var trainingRatings: Int
        /// Ratings streamed as observations, in time order.
        public var streamedRatings: Int
        /// Held-out ratings scored (of items the initial model knows).
        public var heldOutRatings: Int
        /// Held-out ratings left out because the initial model does not know the item.
        public var heldOutSkipped: Int
        /// Held-out RMSE of the initial model.
        public var initialRMSE: Double
        /// After online updates of the user weights only (Velox).
        public var onlineRMSE: Double
        /// After online updates of the user weights and the items' rows.
        public var itemOnlineRMSE: Double
        /// After a full retrain on the initial and streamed ratings.
        public var retrainRMSE: Double

        /// The share of the retrain's RMSE reduction that online updates of the user weights
        /// achieved.
        public var recovered: Double { (initialRMSE - onlineRMSE) / (initialRMSE - retrainRMSE) }
        /// The share of the retrain's RMSE reduction that online updates of users and items
        /// achieved (above 1: better than the retrain).
        public var recoveredWithItems: Double { (initialRMSE - itemOnlineRMSE) / (initialRMSE - retrainRMSE) }
    }

    /// How the streamed observations are learned into the items' rows.
    public struct ItemUpdates: Sendable {
        /// Which side learns an observation first. Item first measured better (BENCHMARKS.md):
        /// the item then learns the user's honest prequential error, not the smaller residual left
        /// once the user has absorbed the observation.
        public enum Order: String, Sendable, CaseIterable {
            /// The user against the item's current row, then the item with the user's updated weights.
            case userFirst = "user-first"
            /// The item with the user's current weights, then the user against the item's updated row.
            case itemFirst = "item-first"
        }

        /// Which side learns each observation first.
        public var order: Order
        /// The items' ridge penalty; nil uses the training λ (and its scaling by count).
        public var lambda: Float?
        /// Learn the items' label offsets (`μ + b_i`) as well as their factors.
        public var learnsOffset: Bool
        /// Start from the served rows (true) or re-solve them from the training data (false).
        public var startFromServedRows: Bool

        /// Settings; by default item first (measured better), the training λ, offsets learned,
        /// starting from the served rows. O(1).
        public init(order: Order = .itemFirst, lambda: Float? = nil, learnsOffset: Bool = true, startFromServedRows: Bool = true) {
            self.order = order
            self.lambda = lambda
            self.learnsOffset = learnsOffset
            self.startFromServedRows = startFromServedRows
        }
    }

    /// The training settings of the initial model and of the retrain.
    public var configuration: Trainer.Configuration
    /// How the streamed observations are learned into the items' rows.
    public var itemUpdates: ItemUpdates
    /// Receives one line per step of the experiment and of its trainings.
    public var log: @Sendable (String) -> Void

    /// An experiment with these settings. O(1): nothing runs until ``run(ratings:)``.
    public init(configuration: Trainer.Configuration = .init(), itemUpdates: ItemUpdates = .init(),
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.itemUpdates = itemUpdates
        self.log = log
    }

    /// Splits each user's ratings into (initial training, streamed, held out) by time.
    static func split(_ ratings: [Rating]) -> (train: [Rating], stream: [Rating], heldOut: [Rating]) {
        var byUser: [String: [Rating]] = [:]
        for r in ratings { byUser[r.uid, default: []].append(r) }
        var train: [Rating] = [], stream: [Rating] = [], heldOut: [Rating] = []
        for uid in byUser.keys.sorted() {
            let rs = byUser[uid]!.enumerated().sorted { ($0.element.timestamp, $0.offset) < ($1.element.timestamp, $1.offset) }.map(\.element)
            let half = rs.count / 2
            let rest = rs.count - half
            let streamed = Int((Double(rest) * 0.7).rounded())
            train += rs[..<half]
            stream += rs[half..<(half + streamed)]
            heldOut += rs[(half + streamed)...]
        }
        stream.sort { $0.timestamp < $1.timestamp }
        return (train, stream, heldOut)
    }

    /// Runs the experiment. O(two trainings + items' states (n·d² + items·d³) + streamed · d²).
    /// - Throws: ``Trainer/ConfigurationError`` when a training step cannot run.
    public func run(ratings: [Rating]) throws -> Result {
        let (train, stream, heldOut) = Self.split(ratings)
        log("split: \(train.count) initial, \(stream.count) streamed, \(heldOut.count) held out")
        let trainer = Trainer(configuration: configuration, log: log)
        let initial = try trainer.train(model: "evaluate", number: 1, parent: nil, ratings: train).materialized()
        let v = initial.version
        let scored = heldOut.filter { v.features.catalog.row(of: $0.item) != nil }
        let trainedUsers = Dictionary(uniqueKeysWithValues: initial.users.map { ($0.uid, $0.state) })
        let initialRMSE = Self.rmse(scored, features: v.features, prior: v.prior, users: trainedUsers)

        var users = trainedUsers
        for o in stream {
            guard let row = v.features.catalog.row(of: o.item) else { continue }
            Self.learnUser(o, row: row, features: v.features, version: v, users: &users)
        }
        let onlineRMSE = Self.rmse(scored, features: v.features, prior: v.prior, users: users)
        users = [:]

        log("item-side online updates: \(itemUpdates.order.rawValue), \(itemUpdates.learnsOffset ? "factors and offsets" : "factors only"), from the \(itemUpdates.startFromServedRows ? "served rows" : "re-solved rows")")
        let mean = Float(train.reduce(0.0) { $0 + Double($1.label) } / Double(train.count))
        var items = try ItemWeights(
            features: v.features, ratings: train, userWeights: { trainedUsers[$0]?.weights },
            configuration: .init(
                lambda: itemUpdates.lambda ?? v.metadata.lambda,
                scaledLambda: itemUpdates.lambda == nil && v.metadata.scaledLambda,
                learnsOffset: itemUpdates.learnsOffset, hasBiasFeature: configuration.biases,
                start: itemUpdates.startFromServedRows ? .servedRows : .ridgeSolution(mean: mean)),
            threads: configuration.threads)
        users = trainedUsers
        for o in stream {
            guard let row = items.catalog.row(of: o.item) else { continue }
            switch itemUpdates.order {
            case .userFirst:
                Self.learnUser(o, row: row, features: items, version: v, users: &users)
                users[o.uid]!.weights.withUnsafeBufferPointer { _ = items.learn(item: row, userWeights: $0.baseAddress!, label: o.label) }
            case .itemFirst:
                let w = users[o.uid]?.weights ?? (v.prior + [Float](repeating: 0, count: v.features.stride - v.dimension))
                w.withUnsafeBufferPointer { _ = items.learn(item: row, userWeights: $0.baseAddress!, label: o.label) }
                Self.learnUser(o, row: row, features: items, version: v, users: &users)
            }
        }
        let itemOnlineRMSE = Self.rmse(scored, features: items, prior: v.prior, users: users)
        users = [:]

        log("full retrain on \(train.count + stream.count) ratings")
        let retrained = try trainer.train(model: "evaluate", number: 2, parent: 1, ratings: train + stream).materialized()
        let retrainUsers = Dictionary(uniqueKeysWithValues: retrained.users.map { ($0.uid, $0.state) })
        let retrainRMSE = Self.rmse(scored, features: retrained.version.features, prior: retrained.version.prior, users: retrainUsers)
        return Result(
            trainingRatings: train.count, streamedRatings: stream.count, heldOutRatings: scored.count,
            heldOutSkipped: heldOut.count - scored.count,
            initialRMSE: initialRMSE, onlineRMSE: onlineRMSE, itemOnlineRMSE: itemOnlineRMSE, retrainRMSE: retrainRMSE)
    }

    /// One exact ridge update of the observing user's weights against item `row`'s current
    /// features (a user new to the version starts from the prior). O(d²).
    static func learnUser(_ o: Rating, row: Int, features: some FeatureFunction, version v: ModelVersion, users: inout [String: RidgeState]) {
        features.withFeatures(item: row) { f, offset in
            _ = users[o.uid, default: RidgeState(prior: v.prior, lambda: v.lambda)].update(features: f, target: o.label - offset)
        }
    }

    /// Held-out RMSE of the given features with the given users' states (others scored with the
    /// prior; items the features do not know are skipped). O(n·d).
    static func rmse(_ ratings: [Rating], features: some CataloguedFeatures, prior: [Float], users: [String: RidgeState]) -> Double {
        let prior = prior + [Float](repeating: 0, count: features.stride - features.dimension)
        var sum = 0.0, n = 0
        for r in ratings {
            guard let row = features.catalog.row(of: r.item) else { continue }
            let w = users[r.uid]?.weights ?? prior
            let p = w.withUnsafeBufferPointer { wp in
                features.withFeatures(item: row) { f, offset in offset + VectorKernels.dot(wp.baseAddress!, f, count: features.stride) }
            }
            sum += Double(p - r.label) * Double(p - r.label)
            n += 1
        }
        return n == 0 ? .nan : (sum / Double(n)).squareRoot()
    }
}
