import OspreyMath
import OspreyModel

/// Item-side online learning for `osprey evaluate`: the materialized feature table θ, kept up to
/// date observation by observation as Oryx's speed layer does, each item a ridge regression on
/// its raters' weights (``ItemRidge``, the same math the serving engine learns items with).
///
/// Use it with the user side in this order, which is the one measured best
/// (bench/results/2026-11-21-online-vs-retrain.md): learn the observation into the item with the
/// user's current weights, then into the user's weights against the item's updated row. (The
/// other order hands the item only the residual the user's update left, and learns less.)
///
/// It is a ``FeatureFunction``, so it can stand in for the version's table wherever features are
/// read; ``materialized()`` freezes it into a new immutable table.
///
/// Memory: one ``RidgeState`` per item, about `2·(d+1)·stride` floats (≈ 23 KB at d = 50).
public struct ItemWeights: CataloguedFeatures {
    /// Settings of the item-side updates.
    public struct Configuration: Sendable {
        /// The ridge penalty λ of each item's regression.
        public var lambda: Float
        /// Scale each item's penalty by its number of training ratings (λ·n, as ALS-WR does).
        public var scaledLambda: Bool
        /// Learn the item's label offset `μ + b_i` too, not only its factors.
        public var learnsOffset: Bool
        /// True when the last feature of each row is the constant 1 that carries the user bias
        /// (models trained with biases); the user's last weight is then its bias `c_u`.
        public var hasBiasFeature: Bool
        /// Where each item's regression starts.
        public var start: ItemRidge.Start

        /// Settings with penalty `lambda` (> 0); by default unscaled, learning offsets, with a
        /// bias feature, starting from the served rows. O(1).
        public init(lambda: Float, scaledLambda: Bool = false, learnsOffset: Bool = true, hasBiasFeature: Bool = true,
                    start: ItemRidge.Start = .servedRows) {
            self.lambda = lambda
            self.scaledLambda = scaledLambda
            self.learnsOffset = learnsOffset
            self.hasBiasFeature = hasBiasFeature
            self.start = start
        }
    }

    /// Entries per row, as in the version's features (the bias feature included).
    public let dimension: Int
    /// Floats between the starts of consecutive rows of ``table`` (the padded dimension).
    public let stride: Int
    /// The items, in row order: the version's catalogue.
    public let catalog: ItemCatalog
    /// The settings the states were built with.
    public let configuration: Configuration
    /// The current rows, `catalog.count` rows of ``stride`` floats (the constant bias feature
    /// stays 1).
    public private(set) var table: [Float]
    /// The current label offsets `μ + b_i` per item row.
    public private(set) var offsets: [Float]
    /// Each item's ridge statistics over its parameters `[q_i; o_i]` (or `[q_i]` without
    /// ``Configuration/learnsOffset``).
    public private(set) var states: [RidgeState]
    /// The regression each item's row solves.
    let ridge: ItemRidge

    /// Builds each item's ridge state from the ratings the rows were trained on, with each
    /// rater's weights as features (``ItemRidge/trainedStates(features:ratings:userWeights:lambda:scaledLambda:start:threads:)``).
    /// O(n·d² + items·d³), on `threads` cores.
    /// - Throws: ``Trainer/ConfigurationError`` when an item's system is not positive definite.
    public init(features: MaterializedFeatures, ratings: [Rating], userWeights: (String) -> [Float]?,
                configuration: Configuration, threads: Int = 2) throws {
        ridge = ItemRidge(dimension: features.dimension, hasBiasFeature: configuration.hasBiasFeature,
                          learnsOffset: configuration.learnsOffset)
        dimension = features.dimension
        stride = features.stride
        catalog = features.catalog
        self.configuration = configuration
        table = features.table
        offsets = features.offsets
        states = try ridge.trainedStates(features: features, ratings: ratings, userWeights: userWeights,
                                         lambda: configuration.lambda, scaledLambda: configuration.scaledLambda,
                                         start: configuration.start, threads: threads)
        for i in 0..<catalog.count { copyRow(i) }
    }

    /// Learns observation `label` of item row `item` by a user whose weights are `userWeights`
    /// (padded to ``stride``), and returns the item-side prediction error made before learning
    /// it. One Sherman–Morrison step of the item's state; O(d²).
    @discardableResult
    public mutating func learn(item: Int, userWeights w: UnsafePointer<Float>, label: Float) -> Float {
        let error = ridge.learn(&states[item], userWeights: w, label: label, offset: offsets[item])
        copyRow(item)
        return error
    }

    /// Copies item row `i`'s solution from its state into ``table`` and ``offsets``. O(d).
    private mutating func copyRow(_ i: Int) {
        let s = stride, ridge = self.ridge, state = states[i], served = offsets[i]
        offsets[i] = table.withUnsafeMutableBufferPointer { ridge.row(of: state, into: $0.baseAddress! + i * s, offset: served) }
    }

    /// Calls `body` with item row `item`'s current features and offset. O(1).
    @inlinable
    public func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try table.withUnsafeBufferPointer { try body($0.baseAddress! + item * stride, offsets[item]) }
    }

    /// The current rows as an immutable feature table (for a new version). O(items·d).
    public func materialized() -> MaterializedFeatures {
        MaterializedFeatures(dimension: dimension, ids: catalog.ids, table: table, offsets: offsets)
    }
}
