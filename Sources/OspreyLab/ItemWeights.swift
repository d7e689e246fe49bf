import Dispatch
import OspreyMath
import OspreyModel

/// Item-side online learning: the materialized feature table θ, kept up to date observation by
/// observation as Oryx's speed layer does, instead of only at the next retrain as Velox does.
///
/// In a model trained by ALS each item's row is itself a ridge solution: with the users'
/// weights split as `w_u = [p_u; c_u]` (factors and user bias) the item's parameters
/// `x_i = [q_i; o_i]` (factors and label offset `μ + b_i`) solve
/// `min Σ_u (y_ui − c_u − [p_u; 1]·x_i)² + λ_i ‖x_i − [0; μ]‖²` over the users who rated it — the
/// item half-step of ALS. So each item keeps the sufficient statistics of that regression,
/// `A_i = λ_i I + Σ g_u g_uᵀ` with `g_u = [p_u; 1]` and the matching `b_i`, in a ``RidgeState``,
/// and an observation `(u, i, y)` is one exact Sherman–Morrison step of item i's state with the
/// user's weights as its features: O(d²), touching only item i, just as a user update touches only
/// user u (Velox eq. 2 with the roles of users and items swapped).
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
///
/// For the serving engine: unlike a user's state, an item's state is written by observations of
/// every user, so updates partitioned by uid (docs/architecture.md, "Threads and locks") meet
/// on popular items; an engine adopting this needs per-item locks (the state is per item, so
/// striping by item row works) and, since the prediction and feature caches hold rows, to
/// invalidate an item's entries when it moves.
public struct ItemWeights: CataloguedFeatures {
    /// Settings of the item-side updates.
    public struct Configuration: Sendable {
        /// Where each item's regression starts.
        public enum Start: Sendable, Equatable {
            /// `A_i` from the training data, `b_i = A_i x_i` with the served row `x_i`: the row
            /// does not move until the item is observed (the users' states were computed
            /// against it), and later observations pull it as a ridge prior of precision `A_i`.
            case servedRows
            /// `A_i` and `b_i` from the training data with the final user weights: the rows are
            /// re-solved at once (one more ALS item half-step), which needs the global mean μ
            /// the offsets are shrunk towards.
            case ridgeSolution(mean: Float)
        }

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
        public var start: Start

        /// Settings with penalty `lambda` (> 0); by default unscaled, learning offsets, with a
        /// bias feature, starting from the served rows. O(1).
        public init(lambda: Float, scaledLambda: Bool = false, learnsOffset: Bool = true, hasBiasFeature: Bool = true,
                    start: Start = .servedRows) {
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
    /// The number of learned factor entries per row: `dimension`, less the constant bias feature.
    let factorCount: Int

    /// Builds each item's ridge state from the ratings the rows were trained on, with each
    /// rater's weights as features. Ratings of unknown items or users without weights are
    /// skipped. O(n·d² + items·d³), on `threads` cores.
    /// - Parameters:
    ///   - features: the version's rows and offsets, as served.
    ///   - ratings: the training ratings.
    ///   - userWeights: a user's weights (padded or not, `features.dimension` entries used), or nil.
    /// - Throws: ``Trainer/ConfigurationError`` when an item's system is not positive definite.
    public init(features: MaterializedFeatures, ratings: [Rating], userWeights: (String) -> [Float]?,
                configuration: Configuration, threads: Int = 2) throws {
        let dim = features.dimension
        precondition(!configuration.hasBiasFeature || dim >= 2, "a bias feature needs at least one factor besides it")
        precondition(configuration.lambda > 0, "ridge lambda must be positive")
        dimension = dim
        stride = features.stride
        catalog = features.catalog
        self.configuration = configuration
        table = features.table
        offsets = features.offsets
        let k = configuration.hasBiasFeature ? dim - 1 : dim
        factorCount = k
        let m = k + (configuration.learnsOffset ? 1 : 0)

        // Each item's raters: their feature vectors g_u and targets, grouped by item row.
        let itemCount = features.catalog.count
        var raters = [[(weights: [Float], label: Float)]](repeating: [], count: itemCount)
        for r in ratings {
            guard let row = features.catalog.row(of: r.item), let w = userWeights(r.uid) else { continue }
            raters[row].append((w, r.label))
        }
        let results = UnsafeMutableBufferPointer<RidgeState?>.allocate(capacity: itemCount)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        nonisolated(unsafe) let out = results
        let workers = max(1, min(threads, itemCount))
        let c = configuration, bias = configuration.hasBiasFeature
        let table = self.table, offsets = self.offsets, s = stride
        let rows = raters
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var a = [Double](repeating: 0, count: m * m)
            var b = [Double](repeating: 0, count: m)
            var g = [Double](repeating: 0, count: m)
            var i = worker
            while i < itemCount {
                defer { i += workers }
                let penalty = Double(c.lambda) * (c.scaledLambda ? Double(max(1, rows[i].count)) : 1)
                for e in 0..<a.count { a[e] = 0 }
                for e in 0..<m { b[e] = 0; a[e * m + e] = penalty }
                for (w, label) in rows[i] {
                    for e in 0..<k { g[e] = Double(w[e]) }
                    if c.learnsOffset { g[k] = 1 }
                    let t = Double(label) - (bias ? Double(w[k]) : 0) - (c.learnsOffset ? 0 : Double(offsets[i]))
                    for p in 0..<m {
                        b[p] += t * g[p]
                        for q in 0..<m { a[p * m + q] += g[p] * g[q] }
                    }
                }
                switch c.start {
                case .servedRows:
                    // b = A x with the served row x, so the state's solution is the served row.
                    var x = [Double](repeating: 0, count: m)
                    for e in 0..<k { x[e] = Double(table[i * s + e]) }
                    if c.learnsOffset { x[k] = Double(offsets[i]) }
                    for p in 0..<m {
                        var sum = 0.0
                        for q in 0..<m { sum += a[p * m + q] * x[q] }
                        b[p] = sum
                    }
                case .ridgeSolution(let mean):
                    // The offset is shrunk towards μ (penalty λ·b_i², as in ALS), not towards 0.
                    if c.learnsOffset { b[k] += penalty * Double(mean) }
                }
                out[i] = try? RidgeState(gram: a, rhs: b)
            }
        }
        var states: [RidgeState] = []
        states.reserveCapacity(itemCount)
        for i in 0..<itemCount {
            guard let state = results[i] else {
                throw Trainer.ConfigurationError(description: "item \(catalog.ids[i])'s ridge system is singular; use a larger lambda")
            }
            states.append(state)
        }
        self.states = states
        for i in 0..<itemCount { copyRow(i) }
    }

    /// Learns observation `label` of item row `item` by a user whose weights are `userWeights`
    /// (padded to ``stride``), and returns the item-side prediction error made before learning
    /// it. One Sherman–Morrison step of the item's state; O(d²).
    @discardableResult
    public mutating func learn(item: Int, userWeights w: UnsafePointer<Float>, label: Float) -> Float {
        let k = factorCount, learnsOffset = configuration.learnsOffset
        let userBias = configuration.hasBiasFeature ? w[k] : 0
        let target = label - userBias - (learnsOffset ? 0 : offsets[item])
        let stateStride = states[item].stride
        let error = withUnsafeTemporaryAllocation(of: Float.self, capacity: stateStride) { g in
            let gp = g.baseAddress!
            gp.update(repeating: 0, count: stateStride)
            gp.update(from: w, count: k)
            if learnsOffset { gp[k] = 1 }
            return states[item].update(features: UnsafePointer(gp), target: target)
        }
        copyRow(item)
        return error
    }

    /// Copies item row `i`'s solution from its state into ``table`` and ``offsets``. O(d).
    private mutating func copyRow(_ i: Int) {
        let k = factorCount, s = stride
        states[i].weights.withUnsafeBufferPointer { x in
            table.withUnsafeMutableBufferPointer { t in
                for e in 0..<k { t[i * s + e] = x[e] }
            }
            if configuration.learnsOffset { offsets[i] = x[k] }
        }
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
