/// A compact little-endian binary form of ``RidgeState`` that restores it bit for bit.
extension RidgeState {
    /// A format error in serialized ridge state.
    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    private static let magic: UInt32 = 0x5244_4731  // "RDG1"

    /// The state as bytes: header, weights, A⁻¹ and A (unpadded rows), b. O(d²).
    public func serialized() -> [UInt8] {
        let d = dimension, s = stride
        var out = [UInt8]()
        out.reserveCapacity(16 + d * 4 + 2 * d * d * 4 + d * 8)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(Self.magic)
        put(UInt32(d))
        put(UInt64(updatesSinceRefactor))
        for i in 0..<d { put(weights[i].bitPattern) }
        for i in 0..<d { for j in 0..<d { put(inverse[i * s + j].bitPattern) } }
        for i in 0..<d { for j in 0..<d { put(gram[i * s + j].bitPattern) } }
        for i in 0..<d { put(rhs[i].bitPattern) }
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
        guard try get(UInt32.self) == Self.magic else { throw DecodingError(description: "not a serialized ridge state") }
        let d = Int(try get(UInt32.self))
        guard d > 0, d < 4096 else { throw DecodingError(description: "bad ridge dimension \(d)") }
        let updates = Int(try get(UInt64.self))
        let s = VectorKernels.paddedStride(d)
        var weights = [Float](repeating: 0, count: s)
        var inverse = [Float](repeating: 0, count: d * s)
        var gram = [Float](repeating: 0, count: d * s)
        var rhs = [Double](repeating: 0, count: d)
        for i in 0..<d { weights[i] = Float(bitPattern: try get(UInt32.self)) }
        for i in 0..<d { for j in 0..<d { inverse[i * s + j] = Float(bitPattern: try get(UInt32.self)) } }
        for i in 0..<d { for j in 0..<d { gram[i * s + j] = Float(bitPattern: try get(UInt32.self)) } }
        for i in 0..<d { rhs[i] = Double(bitPattern: try get(UInt64.self)) }
        guard offset == data.count else { throw DecodingError(description: "trailing bytes in ridge state") }
        self.init(dimension: d, weights: weights, inverse: inverse, gram: gram, rhs: rhs, updatesSinceRefactor: updates)
    }
}
