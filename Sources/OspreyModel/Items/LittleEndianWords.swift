import Foundation

/// 32-bit little-endian words, as computed feature functions store θ.
enum LittleEndianWords {
    /// Appends `words` to `data`. O(words).
    static func append(_ words: [UInt32], to data: inout Data) {
        data.reserveCapacity(data.count + 4 * words.count)
        for w in words { withUnsafeBytes(of: w.littleEndian) { data.append(contentsOf: $0) } }
    }

    /// The words of `bytes`, or nil when their count is not a multiple of 4. O(bytes).
    static func words(_ bytes: some Collection<UInt8>) -> [UInt32]? {
        guard bytes.count % 4 == 0 else { return nil }
        var out: [UInt32] = []
        out.reserveCapacity(bytes.count / 4)
        var word: UInt32 = 0, shift: UInt32 = 0
        for b in bytes {
            word |= UInt32(b) << shift
            shift += 8
            if shift == 32 {
                out.append(word)
                word = 0
                shift = 0
            }
        }
        return out
    }
}
