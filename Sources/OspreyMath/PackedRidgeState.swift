/// A ``RidgeState`` packed to about half its size, for keeping many in memory (the hot tier of
/// user state): `w` unpadded, the upper triangles of `A⁻¹` and `A` row by row without padding,
/// and `b` — `d + d(d+1)` floats and `d` doubles, 10.6 KB at d = 50 against 18.8 KB unpacked.
///
/// It is exact: ``unpacked()`` gives back the same bits, because ``RidgeState/update(features:target:)``
/// keeps `A⁻¹` exactly symmetric and `A` is symmetric by construction. A state that is not
/// (restored from a snapshot written before the symmetric update) does not pack: ``init(_:)``
/// returns nil and the caller keeps it unpacked.
public struct PackedRidgeState: Sendable, Equatable {
    /// The number of weights, d.
    public let dimension: Int
    /// `w` (d), then the upper triangle of `A⁻¹` (row i from column i), then that of `A`.
    private(set) var values: [Float]
    private(set) var rhs: [Double]
    private(set) var updatesSinceRefactor: Int

    /// From its parts (see ``RidgeState/serialized()``).
    init(dimension: Int, values: [Float], rhs: [Double], updatesSinceRefactor: Int) {
        precondition(values.count == dimension + dimension * (dimension + 1) && rhs.count == dimension)
        self.dimension = dimension
        self.values = values
        self.rhs = rhs
        self.updatesSinceRefactor = updatesSinceRefactor
    }

    /// Packs `state`, or returns nil when its `A⁻¹` or `A` is not exactly symmetric. O(d²).
    public init?(_ state: RidgeState) {
        let d = state.dimension
        var values = [Float](repeating: 0, count: d + d * (d + 1))
        guard values.withUnsafeMutableBufferPointer({ Self.pack(state, into: $0) }) else { return nil }
        dimension = d
        self.values = values
        rhs = state.rhs
        updatesSinceRefactor = state.updatesSinceRefactor
    }

    /// Packs `state` (of the same dimension) into this value's storage, in place when it is not
    /// shared, so a hot user's learn allocates no new packed arrays. Returns false, leaving this
    /// value unspecified, when `state` does not pack. O(d²).
    public mutating func repack(_ state: RidgeState) -> Bool {
        precondition(state.dimension == dimension, "repacking a state of another dimension")
        guard values.withUnsafeMutableBufferPointer({ Self.pack(state, into: $0) }) else { return false }
        rhs.withUnsafeMutableBufferPointer { out in
            state.rhs.withUnsafeBufferPointer { out.baseAddress!.update(from: $0.baseAddress!, count: dimension) }
        }
        updatesSinceRefactor = state.updatesSinceRefactor
        return true
    }

    /// Writes `w` and the upper triangles of `A⁻¹` and `A` into `out`; false when an entry kept
    /// twice disagrees with its mirror (or a padding lane is not zero), so packing would lose it.
    private static func pack(_ state: RidgeState, into out: UnsafeMutableBufferPointer<Float>) -> Bool {
        let d = state.dimension, s = state.stride
        let triangle = d * (d + 1) / 2
        return state.weights.withUnsafeBufferPointer { w in
            state.inverse.withUnsafeBufferPointer { inv in
                state.gram.withUnsafeBufferPointer { g in
                    for i in 0..<d { out[i] = w[i] }
                    // Padding lanes are zero by construction; unpacking writes zeros there.
                    for j in d..<s where w[j].bitPattern != 0 { return false }
                    var k = d, m = d + triangle
                    for i in 0..<d {
                        let first = RidgeState.firstMaintained(row: i), row = RidgeState.gramOffset(row: i, stride: s)
                        for j in d..<s where inv[i * s + j].bitPattern != 0 || g[row + j - first].bitPattern != 0 { return false }
                        // A's lower entries in the diagonal's SIMD step are kept twice too.
                        for j in first..<i where g[row + j - first].bitPattern != g[RidgeState.gramOffset(row: j, stride: s) + i - RidgeState.firstMaintained(row: j)].bitPattern {
                            return false
                        }
                        for j in i..<d {
                            let v = inv[i * s + j]
                            if j > i, v.bitPattern != inv[j * s + i].bitPattern { return false }
                            out[k] = v
                            k += 1
                            out[m] = g[row + j - first]
                            m += 1
                        }
                    }
                    return true
                }
            }
        }
    }

    /// The state, bit for bit as packed. O(d²).
    public func unpacked() -> RidgeState {
        let d = dimension, s = VectorKernels.paddedStride(d)
        let triangle = d * (d + 1) / 2
        var weights = [Float](repeating: 0, count: s)
        var inverse = [Float](repeating: 0, count: d * s)
        var gram = [Float](repeating: 0, count: RidgeState.gramOffset(row: d, stride: s))
        values.withUnsafeBufferPointer { v in
            for i in 0..<d { weights[i] = v[i] }
            var k = d, m = d + triangle
            for i in 0..<d {
                for j in i..<d {
                    inverse[i * s + j] = v[k]
                    inverse[j * s + i] = v[k]
                    k += 1
                    // Row i of A from its SIMD step; row j's in-step entry below the diagonal too.
                    gram[RidgeState.gramOffset(row: i, stride: s) + j - RidgeState.firstMaintained(row: i)] = v[m]
                    let firstJ = RidgeState.firstMaintained(row: j)
                    if i >= firstJ { gram[RidgeState.gramOffset(row: j, stride: s) + i - firstJ] = v[m] }
                    m += 1
                }
            }
        }
        return RidgeState(dimension: d, weights: weights, inverse: inverse, gram: gram, rhs: rhs,
                          updatesSinceRefactor: updatesSinceRefactor)
    }

    /// Calls `body` with `w` (``dimension`` floats, unpadded), read in place. O(1) plus `body`.
    public func withWeights<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try values.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// Where the packed values are stored: the same before and after a ``repack(_:)`` that
    /// reused the storage, another after one that had to copy it (it was shared). O(1).
    public var storageAddress: UInt {
        values.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
    }

    /// Bytes held (the two arrays' elements), for memory accounting. O(1).
    public var byteCount: Int { values.count * MemoryLayout<Float>.size + rhs.count * MemoryLayout<Double>.size }
}
