/// What observations add to a ridge regression's sufficient statistics (``RidgeState``): `Σ f fᵀ`
/// (upper triangle, packed row by row) and `Σ t f`, in `Double`, with their count.
///
/// Sums, so statistics gathered apart (one node's observations of an item, another's) add up
/// to those of all the observations in any order — the grow-only part of ``RidgeState`` that
/// nodes exchange (docs/architecture.md, "Items on several nodes"). A state is then its start
/// plus the statistics, solved once (``RidgeState/init(_:adding:)``).
public struct RidgeStatistics: Sendable, Equatable {
    /// The number of weights, d.
    public let dimension: Int
    /// The upper triangle of `Σ f fᵀ`: row `i`'s columns `i..<d`, rows one after the other
    /// (``packedCount(_:)`` entries).
    public private(set) var gram: [Double]
    /// `Σ t f`.
    public private(set) var rhs: [Double]
    /// The observations summed.
    public private(set) var count: Int

    /// No observation yet. O(d²).
    public init(dimension: Int) {
        self.dimension = dimension
        gram = [Double](repeating: 0, count: Self.packedCount(dimension))
        rhs = [Double](repeating: 0, count: dimension)
        count = 0
    }

    /// Statistics from their parts (as a store reads them back).
    /// - Throws: ``RidgeState/DecodingError`` when the sizes do not match `dimension`, or a value
    ///   is not finite.
    public init(dimension: Int, gram: [Double], rhs: [Double], count: Int) throws {
        guard dimension > 0, gram.count == Self.packedCount(dimension), rhs.count == dimension, count >= 0 else {
            throw RidgeState.DecodingError(description: "ridge statistics of dimension \(dimension) need \(Self.packedCount(dimension)) "
                + "gram and \(dimension) rhs entries, not \(gram.count) and \(rhs.count) (count \(count))")
        }
        guard gram.allSatisfy(\.isFinite), rhs.allSatisfy(\.isFinite) else {
            throw RidgeState.DecodingError(description: "ridge statistics hold a value that is not finite")
        }
        self.dimension = dimension
        self.gram = gram
        self.rhs = rhs
        self.count = count
    }

    /// Entries of the packed upper triangle of a `d × d` matrix.
    public static func packedCount(_ d: Int) -> Int { d * (d + 1) / 2 }

    /// Adds one observation: features `f` (``dimension`` entries read) and target `t`. O(d²).
    public mutating func add(features f: UnsafePointer<Float>, target t: Float) {
        let d = dimension
        gram.withUnsafeMutableBufferPointer { g in
            var at = 0
            for i in 0..<d {
                let fi = Double(f[i])
                if fi == 0 { at += d - i; continue }
                for j in i..<d {
                    g[at] += fi * Double(f[j])
                    at += 1
                }
            }
        }
        for i in 0..<d { rhs[i] += Double(t) * Double(f[i]) }
        count += 1
    }

    /// Adds `other`'s observations. O(d²).
    /// - Precondition: the same dimension.
    public static func += (lhs: inout RidgeStatistics, other: RidgeStatistics) {
        precondition(lhs.dimension == other.dimension, "ridge statistics of dimension \(lhs.dimension) and \(other.dimension)")
        for e in 0..<lhs.gram.count { lhs.gram[e] += other.gram[e] }
        for e in 0..<lhs.rhs.count { lhs.rhs[e] += other.rhs[e] }
        lhs.count += other.count
    }
}

extension RidgeState {
    /// `start` with the observations of `statistics` added: `A = A₀ + Σ f fᵀ` and
    /// `b = b₀ + Σ t f`, solved in `Double` (as a ``refactor()``), so the state is the same
    /// whatever order the observations came in. O(d³).
    /// - Throws: ``Cholesky/NotPositiveDefinite`` when `A` is not positive definite.
    /// - Precondition: the same dimension.
    public init(_ start: RidgeState, adding statistics: RidgeStatistics) throws {
        let d = start.dimension
        precondition(statistics.dimension == d, "a state of dimension \(d) and statistics of \(statistics.dimension)")
        var a = start.gramMatrix()
        var at = 0
        for i in 0..<d {
            for j in i..<d {
                let v = statistics.gram[at]
                a[i * d + j] += v
                if j != i { a[j * d + i] += v }
                at += 1
            }
        }
        var b = start.rhs
        for i in 0..<d { b[i] += statistics.rhs[i] }
        try self.init(gram: a, rhs: b)
    }
}
