import Foundation
import OspreyMath

/// The computed feature function of a version without an attribute map: every item gets the
/// mean of the trained items' vectors and offsets, so an item no one has rated scores as the
/// average item (the global mean and the user's bias, plus the user's taste for the average
/// item). Derived from the trained table when a version is loaded; never stored.
public struct MeanItemFeatures: ComputedFeatureFunction, Equatable {
    public static let kind = "mean-item"
    public let dimension: Int
    /// The mean vector, padded to the stride, and the mean offset.
    let vector: [Float], offset: Float

    /// The mean of `table`'s rows (zero for an empty table). O(items · d).
    public init(_ table: MaterializedFeatures) {
        dimension = table.dimension
        let n = table.catalog.count
        var sum = [Double](repeating: 0, count: table.stride), offsets = 0.0
        for row in 0..<n {
            table.withFeatures(item: row) { f, o in
                for k in 0..<table.stride { sum[k] += Double(f[k]) }
                offsets += Double(o)
            }
        }
        let scale = n > 0 ? 1 / Double(n) : 0
        vector = sum.map { Float($0 * scale) }
        offset = Float(offsets * scale)
    }

    public func features(of attributes: ItemAttributes, into out: UnsafeMutablePointer<Float>) -> Float {
        vector.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
        return offset
    }

    /// The dimension as a little-endian UInt32, then the offset and the padded vector as
    /// little-endian Float32.
    public func encoded() throws -> Data {
        var data = Data()
        LittleEndianWords.append([UInt32(dimension), offset.bitPattern] + vector.map(\.bitPattern), to: &data)
        return data
    }

    public init(encoded data: Data) throws {
        guard let words = LittleEndianWords.words(data), let d = words.first, d >= 1, d <= 4096,
              words.count == 2 + VectorKernels.paddedStride(Int(d))
        else { throw HashedAttributeFeatures.FitError(description: "mean item: \(data.count) bytes are not a dimension, an offset and a vector") }
        dimension = Int(d)
        offset = Float(bitPattern: words[1])
        vector = words[2...].map { Float(bitPattern: $0) }
    }
}
