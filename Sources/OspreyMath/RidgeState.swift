/// The sufficient statistics of one user's ridge regression, maintained online (Velox §3, eq. 2).
///
/// For observations with feature vectors `f` and targets `t` the user's weights are
/// `w = A⁻¹ b` with `A = λI + Σ f fᵀ` and `b = λ w₀ + Σ t f` (`w₀` is the prior: zero for a
/// user fitted by ALS, the mean of all users' weights for a bootstrapped one). Each observation
/// changes `A⁻¹` by a Sherman–Morrison rank-one update and `w` by the matching recursive
/// least-squares step, O(d²) with no re-solve.
///
/// Float32 Sherman–Morrison updates drift slowly, so `A` itself is kept too and every
/// ``refactorInterval`` updates `A⁻¹` and `w` are recomputed from `A` and `b` in `Double`
/// (O(d³), amortized to O(d³/interval) per update). `b` is accumulated in `Double`. `A` is
/// symmetric, so only its upper part is kept, packed: each row from the SIMD step holding the
/// diagonal to the end of the padded row (at d = 51, 1,752 floats instead of 2,856).
///
/// Vectors are stored with a row stride padded to a multiple of 8 with zero lanes (see
/// ``VectorKernels/paddedStride(_:)``), so every kernel runs whole SIMD8 steps.
public struct RidgeState: Sendable, Equatable {
    /// The number of updates after which `A⁻¹` and `w` are recomputed from `A` and `b`.
    public static let refactorInterval = 1000

    /// The number of weights, d (+1 when the model carries a bias feature).
    public let dimension: Int
    /// The padded row stride of ``weights`` and the matrices.
    public let stride: Int
    /// The user's current weights `w = A⁻¹ b`, padded to ``stride`` with zeros.
    public private(set) var weights: [Float]
    /// `A⁻¹`, `dimension` rows of `stride` floats.
    public private(set) var inverse: [Float]
    /// The upper part of `A`, packed: row `i`'s columns from ``firstMaintained(row:)`` to the
    /// stride, at ``gramOffset(row:stride:)``. Read it with ``gramMatrix()``.
    private(set) var gram: [Float]
    /// `b`, accumulated in `Double`.
    public private(set) var rhs: [Double]
    /// Updates applied since `A⁻¹` was last recomputed from `A`.
    public private(set) var updatesSinceRefactor: Int

    /// A state with no observations yet: `A = λI`, `b = λ·prior`, so `w = prior`. O(d²).
    public init(prior: [Float], lambda: Float) {
        precondition(lambda > 0, "ridge lambda must be positive")
        let d = prior.count
        let s = VectorKernels.paddedStride(d)
        dimension = d
        stride = s
        weights = prior + [Float](repeating: 0, count: s - d)
        inverse = [Float](repeating: 0, count: d * s)
        gram = [Float](repeating: 0, count: Self.gramOffset(row: d, stride: s))
        for i in 0..<d {
            inverse[i * s + i] = 1 / lambda
            gram[Self.gramOffset(row: i, stride: s) + i - Self.firstMaintained(row: i)] = lambda
        }
        rhs = prior.map { Double(lambda) * Double($0) }
        updatesSinceRefactor = 0
    }

    /// A state from an accumulated `A` (`dimension × dimension`, row-major) and `b`; solves for
    /// `A⁻¹` and `w` in `Double`. O(d³).
    /// - Throws: ``Cholesky/NotPositiveDefinite`` when `A` is not positive definite.
    public init(gram a: [Double], rhs b: [Double]) throws {
        let d = b.count
        precondition(a.count == d * d, "gram must be d × d")
        let s = VectorKernels.paddedStride(d)
        dimension = d
        stride = s
        weights = [Float](repeating: 0, count: s)
        inverse = [Float](repeating: 0, count: d * s)
        gram = [Float](repeating: 0, count: Self.gramOffset(row: d, stride: s))
        for i in 0..<d {
            let first = Self.firstMaintained(row: i), row = Self.gramOffset(row: i, stride: s)
            for j in first..<d { gram[row + j - first] = Float(a[i * d + j]) }
        }
        rhs = b
        updatesSinceRefactor = 0
        try refactor()
    }

    /// Restores a state bit for bit from its parts (see ``RidgeState/serialized()``).
    init(dimension: Int, weights: [Float], inverse: [Float], gram: [Float], rhs: [Double], updatesSinceRefactor: Int) {
        self.dimension = dimension
        self.stride = VectorKernels.paddedStride(dimension)
        self.weights = weights
        self.inverse = inverse
        self.gram = gram
        self.rhs = rhs
        self.updatesSinceRefactor = updatesSinceRefactor
    }

    /// The current estimate `w · f` for a feature vector padded to ``stride``. O(d).
    @inlinable
    public func predict(_ features: UnsafePointer<Float>) -> Float {
        weights.withUnsafeBufferPointer { VectorKernels.dot($0.baseAddress!, features, count: stride) }
    }

    /// Learns one observation: a feature vector `f` (padded to ``stride`` with zeros) and its
    /// target `t`. Returns the prediction error `t − w·f` made *before* learning it (prequential).
    ///
    /// Sherman–Morrison (Velox eq. 2): with `u = A⁻¹f` and `s = 1 + fᵀu`,
    /// `A⁻¹ ← A⁻¹ − u uᵀ / s` and `w ← w + u (t − w·f) / s`. The downdate is applied as
    /// `A⁻¹ ← A⁻¹ − v vᵀ` with `v = u / √s`: entry (i, j) and entry (j, i) then get the very same
    /// product `vᵢ vⱼ`, so `A⁻¹` stays exactly symmetric and its upper triangle holds all of it
    /// (see ``PackedRidgeState``). O(d²).
    @discardableResult
    public mutating func update(features f: UnsafePointer<Float>, target t: Float) -> Float {
        let d = dimension, s = stride
        let error = t - predict(f)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: s) { u in
            let up = u.baseAddress!
            inverse.withUnsafeMutableBufferPointer { inv in
                let ip = inv.baseAddress!
                // A⁻¹ is symmetric, so u = A⁻¹f is a sum of its rows weighted by f: axpy steps
                // with no horizontal sums.
                up.update(repeating: 0, count: s)
                for j in 0..<d where f[j] != 0 {
                    VectorKernels.axpy(f[j], ip + j * s, up, count: s)
                }
                let denominator = 1 + VectorKernels.dot(f, up, count: s)
                weights.withUnsafeMutableBufferPointer { w in
                    VectorKernels.axpy(error / denominator, up, w.baseAddress!, count: s)
                }
                // u becomes v = u/√s in place; each row i then takes −vᵢ·v.
                let scale = 1 / denominator.squareRoot()
                for i in 0..<s { up[i] *= scale }
                for i in 0..<d where up[i] != 0 {
                    VectorKernels.axpy(-up[i], up, ip + i * s, count: s)
                }
            }
            gram.withUnsafeMutableBufferPointer { g in
                // A is symmetric and read only by refactor(): keep its upper triangle, from the
                // SIMD step holding the diagonal onward, which roughly halves this pass.
                let gp = g.baseAddress!
                for i in 0..<d where f[i] != 0 {
                    let first = Self.firstMaintained(row: i)
                    VectorKernels.axpy(f[i], f + first, gp + Self.gramOffset(row: i, stride: s), count: s - first)
                }
            }
        }
        for i in 0..<d { rhs[i] += Double(t) * Double(f[i]) }
        updatesSinceRefactor += 1
        if updatesSinceRefactor >= Self.refactorInterval {
            // A from accumulated rank-one terms stays positive definite; if rounding ever broke
            // that, the Sherman–Morrison state is kept rather than losing the update.
            try? refactor()
        }
        return error
    }

    /// Recomputes `A⁻¹` and `w = A⁻¹ b` from `A` and `b` in `Double`, removing the drift of the
    /// Float32 rank-one updates. O(d³).
    /// - Throws: ``Cholesky/NotPositiveDefinite`` when `A` is not positive definite.
    public mutating func refactor() throws {
        let d = dimension, s = stride
        let inv = try Cholesky.inverse(gramMatrix(), n: d)
        for i in 0..<d {
            var wi = 0.0
            for j in 0..<d {
                // The upper triangle's value on both sides: A⁻¹ stays exactly symmetric.
                inverse[i * s + j] = Float(inv[min(i, j) * d + max(i, j)])
                wi += inv[i * d + j] * rhs[j]
            }
            weights[i] = Float(wi)
        }
        updatesSinceRefactor = 0
    }

    /// `A` as a full `dimension × dimension` row-major matrix in `Double`. O(d²).
    public func gramMatrix() -> [Double] {
        let d = dimension, s = stride
        var a = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            let first = Self.firstMaintained(row: i), row = Self.gramOffset(row: i, stride: s)
            for j in i..<d {
                let v = Double(gram[row + j - first])
                a[i * d + j] = v
                a[j * d + i] = v
            }
        }
        return a
    }

    /// The first column of row `i` of `A` that is kept: from the SIMD step holding the diagonal.
    /// Entries before it are always zero (A is symmetric; only its upper part is maintained).
    @inlinable
    static func firstMaintained(row i: Int) -> Int { i / VectorKernels.lanes * VectorKernels.lanes }

    /// Where row `i` of the packed upper part of `A` starts: each earlier row `r` holds
    /// `stride − firstMaintained(row: r)` floats (a multiple of 8, so rows stay SIMD-aligned).
    /// With `i` = d it is the packed size. O(1).
    @inlinable
    static func gramOffset(row i: Int, stride s: Int) -> Int {
        let lanes = VectorKernels.lanes
        let blocks = i / lanes, rest = i % lanes
        return lanes * (blocks * s - lanes * blocks * (blocks - 1) / 2) + rest * (s - lanes * blocks)
    }
}
