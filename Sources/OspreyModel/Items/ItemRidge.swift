import Dispatch
import OspreyMath

/// The item side of online learning (Oryx's speed layer over Velox's model): one item's row as
/// a ridge regression on the weights of the users who rate it.
///
/// In a model trained by ALS each item's row is itself a ridge solution: with the users'
/// weights split as `w_u = [p_u; c_u]` (factors and user bias) the item's parameters
/// `x_i = [q_i; o_i]` (factors and label offset `μ + b_i`) solve
/// `min Σ_u (y_ui − c_u − [p_u; 1]·x_i)² + λ_i ‖x_i − x⁰_i‖²` over the users who rated it — the
/// item half-step of ALS. An item's ``RidgeState`` holds that regression's statistics
/// (`A_i = λ_i I + Σ g_u g_uᵀ` with `g_u = [p_u; 1]`, and `b_i`), and an observation `(u, i, y)`
/// is one exact Sherman–Morrison step of it with the user's weights as its features: O(d²),
/// touching only item i (Velox eq. 2 with the roles of users and items swapped).
///
/// Without a bias feature (a model trained without biases) `w_u = p_u` and `g_u = [p_u; 1]`
/// still. Without ``learnsOffset`` the offset stays as served and `g_u = p_u`.
public struct ItemRidge: Sendable, Equatable {
    /// Entries per feature row, as in the version's features (the bias feature included).
    public let dimension: Int
    /// True when the last entry of each row is the constant 1 that carries the user bias; the
    /// user's last weight is then its bias `c_u`.
    public let hasBiasFeature: Bool
    /// Learn the item's label offset `μ + b_i` too, not only its factors.
    public let learnsOffset: Bool

    /// The item side of rows of `dimension` entries. O(1).
    public init(dimension: Int, hasBiasFeature: Bool, learnsOffset: Bool = true) {
        precondition(!hasBiasFeature || dimension >= 2, "a bias feature needs at least one factor besides it")
        self.dimension = dimension
        self.hasBiasFeature = hasBiasFeature
        self.learnsOffset = learnsOffset
    }

    /// The item side of a version's rows: with a bias feature when it was trained with biases
    /// (its rows have one entry more than its factors). O(1).
    public init(version: ModelVersion) {
        self.init(dimension: version.dimension, hasBiasFeature: version.dimension == version.metadata.factors + 1)
    }

    /// The learned factor entries of a row: ``dimension``, less the constant bias feature.
    public var factorCount: Int { hasBiasFeature ? dimension - 1 : dimension }
    /// The regression's parameters: the factors, and the offset when it is learned.
    public var parameterCount: Int { factorCount + (learnsOffset ? 1 : 0) }

    /// A state whose solution is the row `features` (padded or not; ``factorCount`` entries
    /// read) with label offset `offset`, of precision `lambda`: the start of an item known only
    /// by its attributes or as the mean item. O(d²).
    public func prior(features f: UnsafePointer<Float>, offset: Float, lambda: Float) -> RidgeState {
        RidgeState(prior: (0..<factorCount).map { f[$0] } + (learnsOffset ? [offset] : []), lambda: lambda)
    }

    /// Learns observation `label` by a user whose weights are `userWeights` (padded to at least
    /// ``dimension``) into the item's `state`, and returns the item-side prediction error made
    /// before learning it. `offset` is the item's served offset, read only when it is not
    /// learned. O(d²).
    @discardableResult
    public func learn(_ state: inout RidgeState, userWeights w: UnsafePointer<Float>, label: Float, offset: Float = 0) -> Float {
        withRegressor(userWeights: w, label: label, offset: offset, stride: state.stride) { g, t in state.update(features: g, target: t) }
    }

    /// ``learn(_:userWeights:label:offset:)``, and adds the observation to `statistics` too (what
    /// a cluster node publishes of the item). O(d²).
    @discardableResult
    public func learn(_ state: inout RidgeState, adding statistics: inout RidgeStatistics, userWeights w: UnsafePointer<Float>,
                      label: Float, offset: Float = 0) -> Float {
        withRegressor(userWeights: w, label: label, offset: offset, stride: state.stride) { g, t in
            statistics.add(features: g, target: t)
            return state.update(features: g, target: t)
        }
    }

    /// Calls `body` with the item regression's features `g = [p_u; 1]` (padded to `stride`) and
    /// target for observation `label` by a user whose weights are `w`. O(d).
    private func withRegressor<R>(userWeights w: UnsafePointer<Float>, label: Float, offset: Float, stride: Int,
                                  _ body: (UnsafePointer<Float>, Float) -> R) -> R {
        let k = factorCount
        let target = label - (hasBiasFeature ? w[k] : 0) - (learnsOffset ? 0 : offset)
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: stride) { g in
            let gp = g.baseAddress!
            gp.update(repeating: 0, count: stride)
            gp.update(from: w, count: k)
            if learnsOffset { gp[k] = 1 }
            return body(UnsafePointer(gp), target)
        }
    }

    /// Writes the row of `state`'s solution into `row` (its first ``dimension`` entries: the
    /// factors, then the constant 1 with a bias feature) and returns its label offset (`offset`,
    /// the served one, when it is not learned). O(d).
    public func row(of state: RidgeState, into row: UnsafeMutablePointer<Float>, offset: Float = 0) -> Float {
        state.weights.withUnsafeBufferPointer { self.row(weights: $0.baseAddress!, into: row, offset: offset) }
    }

    /// ``row(of:into:offset:)`` from a state's solution `x` (its ``parameterCount`` entries). O(d).
    public func row(weights x: UnsafePointer<Float>, into row: UnsafeMutablePointer<Float>, offset: Float = 0) -> Float {
        let k = factorCount
        row.update(from: x, count: k)
        if hasBiasFeature { row[k] = 1 }
        return learnsOffset ? x[k] : offset
    }

    /// Where each trained item's regression starts.
    public enum Start: Sendable, Equatable {
        /// `A_i` from the training data, `b_i = A_i x_i` with the served row `x_i`: the row does
        /// not move until the item is observed (the users' states were computed against it),
        /// and later observations pull it as a ridge prior of precision `A_i`.
        case servedRows
        /// `A_i` and `b_i` from the training data: the rows are re-solved at once (one more ALS
        /// item half-step), the offsets shrunk towards the global mean μ.
        case ridgeSolution(mean: Float)
    }

    /// Each trained item's state from the ratings its row was trained on, with each rater's
    /// weights as features, in row order. Ratings of unknown items or of users without weights
    /// are skipped. O(n·d² + items·d³), on `threads` cores.
    /// - Parameters:
    ///   - features: the version's rows and offsets, as served.
    ///   - ratings: the training ratings.
    ///   - userWeights: a user's weights (padded or not, ``dimension`` entries read), or nil.
    ///   - lambda: the ridge penalty; with `scaledLambda`, times the item's rating count (ALS-WR).
    /// - Throws: ``Trainer/ConfigurationError`` when an item's system is not positive definite.
    public func trainedStates(features: MaterializedFeatures, ratings: [Rating], userWeights: (String) -> [Float]?,
                              lambda: Float, scaledLambda: Bool, start: Start = .servedRows,
                              threads: Int = 2) throws -> [RidgeState] {
        precondition(lambda > 0, "ridge lambda must be positive")
        precondition(features.dimension == dimension, "features of dimension \(features.dimension), item side of \(dimension)")
        let k = factorCount, m = parameterCount, bias = hasBiasFeature, learnsOffset = self.learnsOffset
        let itemCount = features.catalog.count
        // Each user's weights are read once, however many ratings they have.
        var known: [String: [Float]?] = [:]
        var raters = [[(weights: [Float], label: Float)]](repeating: [], count: itemCount)
        for r in ratings {
            guard let row = features.catalog.row(of: r.item) else { continue }
            let w: [Float]?
            if let seen = known[r.uid] {
                w = seen
            } else {
                w = userWeights(r.uid)
                known[r.uid] = .some(w)
            }
            guard let w else { continue }
            raters[row].append((w, r.label))
        }
        known = [:]
        let results = UnsafeMutableBufferPointer<RidgeState?>.allocate(capacity: itemCount)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        nonisolated(unsafe) let out = results
        let workers = max(1, min(threads, itemCount))
        let table = features.table, offsets = features.offsets, s = features.stride
        let rows = raters
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var a = [Double](repeating: 0, count: m * m)
            var b = [Double](repeating: 0, count: m)
            var g = [Double](repeating: 0, count: m)
            var i = worker
            while i < itemCount {
                defer { i += workers }
                let penalty = Double(lambda) * (scaledLambda ? Double(max(1, rows[i].count)) : 1)
                for e in 0..<a.count { a[e] = 0 }
                for e in 0..<m { b[e] = 0; a[e * m + e] = penalty }
                // The upper triangle only (row p from column p), then mirrored: the same products
                // summed in the same order, so the same bits as the full square, in half the work.
                a.withUnsafeMutableBufferPointer { ab in
                    g.withUnsafeMutableBufferPointer { gb in
                        let ap = ab.baseAddress!, gp = gb.baseAddress!
                        for (w, label) in rows[i] {
                            for e in 0..<k { gp[e] = Double(w[e]) }
                            if learnsOffset { gp[k] = 1 }
                            let t = Double(label) - (bias ? Double(w[k]) : 0) - (learnsOffset ? 0 : Double(offsets[i]))
                            for p in 0..<m {
                                let gpp = gp[p], rowStart = ap + p * m
                                b[p] += t * gpp
                                for q in p..<m { rowStart[q] += gpp * gp[q] }
                            }
                        }
                        for p in 0..<m { for q in 0..<p { ap[p * m + q] = ap[q * m + p] } }
                    }
                }
                switch start {
                case .servedRows:
                    // b = A x with the served row x, so the state's solution is the served row.
                    var x = [Double](repeating: 0, count: m)
                    for e in 0..<k { x[e] = Double(table[i * s + e]) }
                    if learnsOffset { x[k] = Double(offsets[i]) }
                    for p in 0..<m {
                        var sum = 0.0
                        for q in 0..<m { sum += a[p * m + q] * x[q] }
                        b[p] = sum
                    }
                case .ridgeSolution(let mean):
                    // The offset is shrunk towards μ (penalty λ·b_i², as in ALS), not towards 0.
                    if learnsOffset { b[k] += penalty * Double(mean) }
                }
                out[i] = try? RidgeState(gram: a, rhs: b)
            }
        }
        var states: [RidgeState] = []
        states.reserveCapacity(itemCount)
        for i in 0..<itemCount {
            guard let state = results[i] else {
                throw Trainer.ConfigurationError(description: "item \(features.catalog.ids[i])'s ridge system is singular; use a larger lambda")
            }
            states.append(state)
        }
        return states
    }
}
