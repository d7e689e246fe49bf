/// A compact binary form of ``RidgeState`` that restores it bit for bit, as little-endian IEEE
/// values (the in-memory layout on every platform Swift runs on Linux, so rows are copied whole).
///
/// - "RDG3" (written whenever the state packs, see ``PackedRidgeState``): a header, then `w`, the
///   upper triangles of `A⁻¹` and `A` (row i from column i), and `b` — 10.8 KB at d = 50.
/// - "RDG2" (written for a state that does not pack; still read): a header, then `w`, `A⁻¹`
///   (unpadded rows), the maintained upper part of `A`, and `b` — 19 KB at d = 50.
extension RidgeState {
    /// A format error in serialized ridge state.
    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    private static let magic: UInt32 = 0x5244_4732  // "RDG2"
    private static let packedMagic: UInt32 = 0x5244_4733  // "RDG3"

    /// The state as bytes: "RDG3" when it packs, else "RDG2". O(d²).
    public func serialized() -> [UInt8] {
        guard let packed = PackedRidgeState(self) else { return serializedUnpacked() }
        let d = dimension
        var out = [UInt8]()
        out.reserveCapacity(16 + packed.values.count * 4 + d * 8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(Self.packedMagic)
        put(UInt32(d))
        put(UInt64(updatesSinceRefactor))
        packed.values.withUnsafeBytes { out.append(contentsOf: $0) }
        packed.rhs.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// The state as "RDG2" bytes: every state has this form, and every Osprey release reads it
    /// (benchmarks write it to compare with a release before "RDG3"). O(d²).
    public func serializedUnpacked() -> [UInt8] {
        let d = dimension, s = stride
        var out = [UInt8]()
        out.reserveCapacity(16 + d * 4 + 2 * d * d * 4 + d * 8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func put<T>(_ array: [T], from start: Int, count: Int) {
            array.withUnsafeBytes { out.append(contentsOf: $0[(start * MemoryLayout<T>.stride)..<((start + count) * MemoryLayout<T>.stride)]) }
        }
        put(Self.magic)
        put(UInt32(d))
        put(UInt64(updatesSinceRefactor))
        put(weights, from: 0, count: d)
        for i in 0..<d { put(inverse, from: i * s, count: d) }
        for i in 0..<d {
            put(gram, from: Self.gramOffset(row: i, stride: s), count: d - Self.firstMaintained(row: i))
        }
        put(rhs, from: 0, count: d)
        return out
    }

    /// Restores a state from ``serialized()`` bytes. O(d²).
    /// - Throws: ``DecodingError`` when the bytes are not a serialized state.
    public init(serialized bytes: some Collection<UInt8>) throws {
        let data = Array(bytes)
        var offset = 0
        func get<T: FixedWidthInteger>(_: T.Type) throws -> T {
            let size = MemoryLayout<T>.size
            guard offset + size <= data.count else { throw DecodingError(description: "ridge state truncated at byte \(offset)") }
            var v: T = 0
            withUnsafeMutableBytes(of: &v) { $0.copyBytes(from: data[offset..<offset + size]) }
            offset += size
            return T(littleEndian: v)
        }
        func get<T>(into array: inout [T], at start: Int, count: Int) throws {
            let size = count * MemoryLayout<T>.stride
            guard offset + size <= data.count else { throw DecodingError(description: "ridge state truncated at byte \(offset)") }
            array.withUnsafeMutableBytes { target in
                data.withUnsafeBytes { source in
                    let from = source[offset..<(offset + size)]
                    UnsafeMutableRawBufferPointer(rebasing: target[(start * MemoryLayout<T>.stride)...]).copyMemory(from: UnsafeRawBufferPointer(rebasing: from))
                }
            }
            offset += size
        }
        let magic = try get(UInt32.self)
        guard magic == Self.magic || magic == Self.packedMagic else { throw DecodingError(description: "not a serialized ridge state") }
        let d = Int(try get(UInt32.self))
        guard d > 0, d < 4096 else { throw DecodingError(description: "bad ridge dimension \(d)") }
        let updates = Int(try get(UInt64.self))
        if magic == Self.packedMagic {
            var values = [Float](repeating: 0, count: d + d * (d + 1))
            var rhs = [Double](repeating: 0, count: d)
            try get(into: &values, at: 0, count: values.count)
            try get(into: &rhs, at: 0, count: d)
            guard offset == data.count else { throw DecodingError(description: "trailing bytes in ridge state") }
            self = PackedRidgeState(dimension: d, values: values, rhs: rhs, updatesSinceRefactor: updates).unpacked()
            return
        }
        let s = VectorKernels.paddedStride(d)
        var weights = [Float](repeating: 0, count: s)
        var inverse = [Float](repeating: 0, count: d * s)
        var gram = [Float](repeating: 0, count: Self.gramOffset(row: d, stride: s))
        var rhs = [Double](repeating: 0, count: d)
        try get(into: &weights, at: 0, count: d)
        for i in 0..<d { try get(into: &inverse, at: i * s, count: d) }
        for i in 0..<d {
            try get(into: &gram, at: Self.gramOffset(row: i, stride: s), count: d - Self.firstMaintained(row: i))
        }
        try get(into: &rhs, at: 0, count: d)
        guard offset == data.count else { throw DecodingError(description: "trailing bytes in ridge state") }
        self.init(dimension: d, weights: weights, inverse: inverse, gram: gram, rhs: rhs, updatesSinceRefactor: updates)
    }
}
