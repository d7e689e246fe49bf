import Foundation
import OspreyMath

/// The online-versus-offline experiment of Velox §4.2: how much of a full retrain's accuracy
/// gain do online updates of the user weights recover?
///
/// Each user's ratings are split by time: the first half trains the initial model, the next 70%
/// of the rest are streamed as observations (in time order, learned with the same exact
/// Sherman–Morrison updates the server runs), and the last 30% are held out. Held-out RMSE is
/// reported for the initial model, the model after online updates, and a full retrain on the
/// initial and streamed ratings. Held-out ratings of items the initial model does not know are
/// left out of all three, so the three are scored on the same pairs.
public struct OnlineOfflineExperiment: Sendable {
    /// The experiment's outcome.
    public struct Result: Sendable, Equatable {
        public var trainingRatings: Int
        public var streamedRatings: Int
        public var heldOutRatings: Int
        /// Held-out ratings left out because the initial model does not know the item.
        public var heldOutSkipped: Int
        public var initialRMSE: Double
        public var onlineRMSE: Double
        public var retrainRMSE: Double

        /// The share of the retrain's RMSE reduction that online updates achieved.
        public var recovered: Double { (initialRMSE - onlineRMSE) / (initialRMSE - retrainRMSE) }
    }

    public var configuration: Trainer.Configuration
    public var log: @Sendable (String) -> Void

    public init(configuration: Trainer.Configuration = .init(), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
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

    /// Runs the experiment. O(two trainings + streamed · d²).
    /// - Throws: ``Trainer/ConfigurationError`` when a training step cannot run.
    public func run(ratings: [Rating]) throws -> Result {
        let (train, stream, heldOut) = Self.split(ratings)
        log("split: \(train.count) initial, \(stream.count) streamed, \(heldOut.count) held out")
        let trainer = Trainer(configuration: configuration, log: log)
        let initial = try trainer.train(model: "evaluate", number: 1, parent: nil, ratings: train)
        let v = initial.version
        let scored = heldOut.filter { v.features.catalog.row(of: $0.item) != nil }

        var users = Dictionary(uniqueKeysWithValues: initial.users.map { ($0.uid, $0.state) })
        let initialRMSE = Self.rmse(scored, version: v, users: users)
        for o in stream {
            guard let row = v.features.catalog.row(of: o.item) else { continue }
            var state = users[o.uid] ?? RidgeState(prior: v.prior, lambda: v.lambda)
            v.features.withFeatures(item: row) { f, offset in _ = state.update(features: f, target: o.label - offset) }
            users[o.uid] = state
        }
        let onlineRMSE = Self.rmse(scored, version: v, users: users)

        log("full retrain on \(train.count + stream.count) ratings")
        let retrained = try trainer.train(model: "evaluate", number: 2, parent: 1, ratings: train + stream)
        let retrainUsers = Dictionary(uniqueKeysWithValues: retrained.users.map { ($0.uid, $0.state) })
        let retrainRMSE = Self.rmse(scored, version: retrained.version, users: retrainUsers)
        return Result(
            trainingRatings: train.count, streamedRatings: stream.count, heldOutRatings: scored.count,
            heldOutSkipped: heldOut.count - scored.count,
            initialRMSE: initialRMSE, onlineRMSE: onlineRMSE, retrainRMSE: retrainRMSE)
    }

    /// Held-out RMSE of a version with the given users' states (others scored with the prior;
    /// items the version does not know are skipped). O(n·d).
    static func rmse(_ ratings: [Rating], version v: ModelVersion, users: [String: RidgeState]) -> Double {
        let prior = v.prior + [Float](repeating: 0, count: v.features.stride - v.dimension)
        var sum = 0.0, n = 0
        for r in ratings {
            guard let row = v.features.catalog.row(of: r.item) else { continue }
            let w = users[r.uid]?.weights ?? prior
            let p = w.withUnsafeBufferPointer { v.features.score(weights: $0.baseAddress!, item: row) }
            sum += Double(p - r.label) * Double(p - r.label)
            n += 1
        }
        return n == 0 ? .nan : (sum / Double(n)).squareRoot()
    }
}
