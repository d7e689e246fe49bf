import COspreyKernels

/// Kernels over 8-bit quantized item blocks (see ``QuantizedItemTable``) and the exact Float32
/// rescoring that reproduces ``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)``
/// bit for bit.
///
/// The integer dot products run in C (`COspreyKernels`), compiled for each x86-64 width and chosen
/// at run time from CPUID: 128-bit `pmaddwd` (the x86-64 baseline), 256-bit AVX2, or 512-bit
/// AVX-512 VNNI `vpdpwssd`; plain C elsewhere. All levels compute the same exact integers.
public enum Int8Kernels {
    /// An instruction-set width for ``blockDots(level:blocks:blockBytes:headerBytes:blockCount:queryPairs:pairs:lowBias:out:)``.
    public enum Level: Int32, Sendable, CaseIterable, CustomStringConvertible {
        case portable = 0, sse2 = 1, avx2 = 2, avx512VNNI = 3

        /// The widest level this CPU and operating system support.
        public static let best = Level(rawValue: osprey_kernel_best_level()) ?? .portable

        /// The levels this machine can run, narrowest first.
        public static var supported: [Level] { allCases.filter { $0.rawValue <= best.rawValue } }

        public var description: String {
            switch self {
            case .portable: "portable C"
            case .sse2: "SSE2"
            case .avx2: "AVX2"
            case .avx512VNNI: "AVX-512 VNNI"
            }
        }
    }

    /// The integer dot products of the quantized query with every item of `blockCount` blocks of
    /// `blockBytes` bytes each (their `pairs` groups of 16 bytes after `headerBytes`), 8 per block
    /// into `out` (items 0–7 of the block).
    ///
    /// Layout: read as eight `Int16` lanes, lane `2m + c` (m = 0..<4, c = 0, 1) of group `p` holds
    /// item `m + 4`'s value of dimension `2p + c` in its high byte (signed) and item `m`'s in its
    /// low byte, stored plus 128 (unsigned). `queryPairs[p]` is `(q̃[2p], q̃[2p+1])` repeated four
    /// times and `lowBias` is `128 · Σ q̃`. Per group this is one shift and two multiply-adds of
    /// 16-bit pairs: `madd(v >> 8, q)` is the high items' sum, and `madd(v, q) − 256·that −
    /// lowBias` the low items'. Intermediate sums may wrap; the results are exact whenever the
    /// true dot products fit in `Int32` (``QuantizedItemTable`` bounds the query levels so they
    /// do). A level above ``Level/best`` runs at ``Level/best``. O(blockCount · pairs).
    public static func blockDots(
        level: Level = .best, blocks: UnsafeRawPointer, blockBytes: Int, headerBytes: Int, blockCount: Int,
        queryPairs: UnsafePointer<SIMD8<Int16>>, pairs: Int, lowBias: Int32, out: UnsafeMutablePointer<Int32>
    ) {
        queryPairs.withMemoryRebound(to: Int16.self, capacity: 8 * pairs) { q in
            osprey_int8_block_dots(
                level.rawValue, blocks.assumingMemoryBound(to: UInt8.self), blockBytes, headerBytes, blockCount,
                q, pairs, lowBias, out)
        }
    }

    /// The bounds of every item's approximate score in `blockCount` blocks of ``QuantizedItemTable``
    /// (each a 96-byte header of 8 `Float` scales, 8 radii and 8 offsets, then the groups of
    /// ``blockDots(level:blocks:blockBytes:headerBytes:blockCount:queryPairs:pairs:lowBias:out:)``):
    /// with the item's dot product `t`, `a = offset + (Float(t) · scale) · step` and
    /// `e = norm · radius + slack`, writes `a + e` to `upper` and `a − e` to `lower`, 8 per block,
    /// each operation rounded separately as the table's error analysis assumes. A NaN offset
    /// (padding, rows scored exactly) gives NaN bounds. O(blockCount · pairs).
    public static func blockBounds(
        level: Level = .best, blocks: UnsafeRawPointer, blockBytes: Int, blockCount: Int,
        queryPairs: UnsafePointer<SIMD8<Int16>>, pairs: Int, lowBias: Int32, step: Float, norm: Float, slack: Float,
        upper: UnsafeMutablePointer<Float>, lower: UnsafeMutablePointer<Float>
    ) {
        queryPairs.withMemoryRebound(to: Int16.self, capacity: 8 * pairs) { q in
            osprey_int8_block_bounds(
                level.rawValue, blocks.assumingMemoryBound(to: UInt8.self), blockBytes, blockCount,
                q, pairs, lowBias, step, norm, slack, upper, lower)
        }
    }

    /// `offset + row · query` over the first `dimension` floats, summed in exactly the order of
    /// ``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)`` for one lane
    /// (accumulator j holds dimensions ≡ j mod 4, the first starts at `offset`, the tail goes to
    /// the first, then `(a0 + a1) + (a2 + a3)`), so the result is bit-identical to the blocked
    /// Float32 scan. Used to rescore candidates from the row-major table. O(dimension).
    @inlinable @inline(__always)
    public static func exactScore(
        row: UnsafePointer<Float>, query: UnsafePointer<Float>, dimension d: Int, offset: Float
    ) -> Float {
        let rawRow = UnsafeRawPointer(row), rawQuery = UnsafeRawPointer(query)
        var acc = SIMD4<Float>(offset, 0, 0, 0)
        var k = 0
        while k + 4 <= d {
            acc += rawRow.loadUnaligned(fromByteOffset: k &* 4, as: SIMD4<Float>.self)
                * rawQuery.loadUnaligned(fromByteOffset: k &* 4, as: SIMD4<Float>.self)
            k += 4
        }
        var a0 = acc[0]
        while k < d {
            a0 += row[k] * query[k]
            k += 1
        }
        return (a0 + acc[1]) + (acc[2] + acc[3])
    }
}
