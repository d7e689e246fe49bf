import Foundation
import OspreyMath
import OspreyModel

/// How well a model scores items no one rated when it was trained (the cold start), three ways:
///
/// - (a) **mean item**: a model without attributes scores a new item as the mean trained item
///   (``MeanItemFeatures``): the global mean, the user's bias and the user's taste for the
///   average item;
/// - (b) **attributes**: the version's attribute map (``HashedAttributeFeatures``) computes the
///   item's vector from its attributes;
/// - (c) **attributes, then its first observations online**: the item's vector is a ridge
///   regression on the users' weights (the item half-step of ALS, as ``ItemWeights`` learns it),
///   with the attribute vector as its prior, learning the item's first `first` ratings one by one.
///
/// Items are held out of training whole (a share of them, chosen by a hash of their id); each
/// held-out item's ratings, in file order, are its first `first` (learned by (c)) and the rest
/// (scored by all three). An item with no more than `first` ratings is left out, so the three
/// score the same ratings. O(ALS + the map's fit + held-out ratings · d²).
public struct ColdStartExperiment: Sendable {
    public var configuration: Trainer.Configuration
    /// The share of items held out of training.
    public var newShare: Double
    /// Ratings of each new item learned online before scoring (c).
    public var first: Int
    public var log: @Sendable (String) -> Void

    public init(configuration: Trainer.Configuration, newShare: Double = 0.1, first: Int = 5,
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.configuration = configuration
        self.newShare = newShare
        self.first = first
        self.log = log
    }

    /// The three RMSEs on the same held-out ratings, and what they were measured on.
    public struct Result: Sendable {
        public var meanItemRMSE: Double, attributesRMSE: Double, onlineRMSE: Double
        public var newItems: Int, scoredRatings: Int, trainingRatings: Int
        /// The attribute map's held-out R² on trained items.
        public var mapR2: Double
    }

    /// A setting that cannot be run.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs the experiment on `ratings` with the items' `attributes`.
    /// - Throws: ``Failure`` when no new item has enough ratings or the map cannot be fitted;
    ///   what the trainer throws.
    public func run(ratings: [Rating], attributes: [String: ItemAttributes]) throws -> Result {
        guard configuration.biases else { throw Failure(description: "the cold-start experiment needs a model with bias terms") }
        let cut = UInt64(max(0, min(1, newShare)) * 1_000)
        func isNew(_ item: String) -> Bool { HashedAttributeFeatures.fnv1a(item) % 1_000 < cut }
        let training = ratings.filter { !isNew($0.item) }
        var byItem: [String: [Rating]] = [:]
        for r in ratings where isNew(r.item) { byItem[r.item, default: []].append(r) }
        let usable = byItem.filter { $0.value.count > first && attributes[$0.key] != nil }
        guard !usable.isEmpty else { throw Failure(description: "no held-out item has more than \(first) ratings and attributes") }
        log("cold start: \(training.count) training ratings, \(usable.count) new items with more than \(first) ratings")

        var trained = try Trainer(configuration: configuration, log: log).train(model: "cold-start", number: 1, parent: nil, ratings: training)
        trained.fitAttributeMap(attributes: { attributes[$0] }, log: log)
        guard let map = trained.computed as? HashedAttributeFeatures else {
            throw Failure(description: "the attribute map could not be fitted: fewer than 10 trained items have attributes")
        }
        let (version, users) = try trained.materialized()
        let weights = Dictionary(users.map { ($0.uid, $0.state.weights) }, uniquingKeysWith: { a, _ in a })
        let mean = MeanItemFeatures(version.features)
        let d = version.dimension, s = version.features.stride
        let prior = version.prior + [Float](repeating: 0, count: s - d)

        var squares = (mean: 0.0, attributes: 0.0, online: 0.0), n = 0
        var vector = [Float](repeating: 0, count: s)
        for (item, itemRatings) in usable.sorted(by: { $0.key < $1.key }) {
            let meanOffset = vector.withUnsafeMutableBufferPointer { mean.features(of: [:], into: $0.baseAddress!) }
            let meanVector = vector
            let attrOffset = vector.withUnsafeMutableBufferPointer { map.features(of: attributes[item]!, into: $0.baseAddress!) }
            let attrVector = vector
            // (c): x = [q; offset] regressed on g_u = [p_u; 1] with target y − c_u, prior the attribute vector.
            var state = RidgeState(prior: Array(attrVector[0..<(d - 1)]) + [attrOffset], lambda: version.lambda)
            var g = [Float](repeating: 0, count: state.stride)
            for r in itemRatings.prefix(first) {
                let w = weights[r.uid] ?? prior
                for k in 0..<(d - 1) { g[k] = w[k] }
                g[d - 1] = 1
                _ = state.update(features: g, target: r.label - w[d - 1])
            }
            let x = state.weights
            for r in itemRatings.dropFirst(first) {
                let w = weights[r.uid] ?? prior
                func score(_ f: [Float], _ offset: Float) -> Double {
                    Double(offset) + (0..<d).reduce(0) { $0 + Double(w[$1]) * Double(f[$1]) }
                }
                let online = Double(x[d - 1]) + Double(w[d - 1]) + (0..<(d - 1)).reduce(0) { $0 + Double(w[$1]) * Double(x[$1]) }
                let y = Double(r.label)
                squares.mean += (score(meanVector, meanOffset) - y) * (score(meanVector, meanOffset) - y)
                squares.attributes += (score(attrVector, attrOffset) - y) * (score(attrVector, attrOffset) - y)
                squares.online += (online - y) * (online - y)
                n += 1
            }
        }
        func rmse(_ sum: Double) -> Double { (sum / Double(max(n, 1))).squareRoot() }
        return Result(meanItemRMSE: rmse(squares.mean), attributesRMSE: rmse(squares.attributes), onlineRMSE: rmse(squares.online),
                      newItems: usable.count, scoredRatings: n, trainingRatings: training.count, mapR2: map.heldOutR2)
    }
}
