/// A compact binary form of ``RidgeState`` that restores it bit for bit: a header, then `w`,
/// `A⁻¹` (unpadded rows), the maintained upper part of `A`, and `b`, as little-endian IEEE values
/// (the in-memory layout on every platform Swift runs on Linux, so rows are copied whole).
extension RidgeState {
    /// A format error in serialized ridge state.
    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    private static let magic: UInt32 = 0x5244_4732  // "RDG2"

    /// The state as bytes. O(d²).
    public func serialized() -> [UInt8] {
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
        guard try get(UInt32.self) == Self.magic else { throw DecodingError(description: "not a serialized ridge state") }
        let d = Int(try get(UInt32.self))
        guard d > 0, d < 4096 else { throw DecodingError(description: "bad ridge dimension \(d)") }
        let updates = Int(try get(UInt64.self))
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
