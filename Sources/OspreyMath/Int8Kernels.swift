#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

/// Kernels over 8-bit quantized item blocks (see ``QuantizedItemTable``) and the exact Float32
/// rescoring that reproduces ``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)``
/// bit for bit.
///
/// The integer dot product is built on `pmaddwd` (SSE2, so on the default x86-64 target): eight
/// 16-bit products summed pairwise into four 32-bit lanes in one instruction, exact, with no
/// float conversion in the inner loop. On other architectures a portable SIMD form is used
/// (same results: integer arithmetic is exact).
public enum Int8Kernels {
    /// `pmaddwd`: `out[j] = a[2j]·b[2j] + a[2j+1]·b[2j+1]` in 32-bit integers (wrapping). O(1).
    @inlinable @inline(__always)
    public static func multiplyAddPairs(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD4<Int32> {
        #if arch(x86_64)
        // Spelled as the intrinsic: LLVM matches the portable form only when it is not inside a
        // loop next to the sign extensions.
        return unsafeBitCast(
            _mm_madd_epi16(unsafeBitCast(a, to: __m128i.self), unsafeBitCast(b, to: __m128i.self)),
            to: SIMD4<Int32>.self)
        #else
        return multiplyAddPairsPortable(a, b)
        #endif
    }

    /// ``multiplyAddPairs(_:_:)`` without intrinsics (used off x86-64; tested against it). O(1).
    @inlinable @inline(__always)
    public static func multiplyAddPairsPortable(_ a: SIMD8<Int16>, _ b: SIMD8<Int16>) -> SIMD4<Int32> {
        let ae = SIMD4<Int32>(truncatingIfNeeded: a.evenHalf), ao = SIMD4<Int32>(truncatingIfNeeded: a.oddHalf)
        let be = SIMD4<Int32>(truncatingIfNeeded: b.evenHalf), bo = SIMD4<Int32>(truncatingIfNeeded: b.oddHalf)
        return ae &* be &+ ao &* bo
    }

    /// The integer dot products of one block of 8 items with the quantized query.
    ///
    /// `block` holds `pairs` groups of 16 bytes, one per pair of dimensions `(2p, 2p+1)`; read as
    /// eight `Int16` lanes, lane `2m + c` (m = 0..<4, c = 0, 1) holds item `m + 4`'s value of
    /// dimension `2p + c` in its high byte (signed) and item `m`'s in its low byte, stored plus
    /// 128 (unsigned). `queryPairs[p]` is `(q̃[2p], q̃[2p+1])` repeated four times and `lowBias`
    /// is `128 · Σ q̃`. Per 16 bytes this is one shift and two `pmaddwd`: `madd(v >> 8, q)` is
    /// the high items' sum, and `madd(v, q) − 256·that − lowBias` the low items'. Intermediate
    /// sums may wrap; the results are exact whenever the true dot products fit in `Int32`
    /// (``QuantizedItemTable`` bounds the query levels so they do). Returns the sums of items
    /// 0–3 and 4–7. O(pairs).
    @inlinable @inline(__always)
    public static func dotBlock(
        _ block: UnsafeRawPointer, queryPairs: UnsafePointer<SIMD8<Int16>>, pairs: Int, lowBias: Int32
    ) -> (low: SIMD4<Int32>, high: SIMD4<Int32>) {
        var whole = SIMD4<Int32>.zero, high = SIMD4<Int32>.zero
        for p in 0..<pairs {
            let v = block.loadUnaligned(fromByteOffset: p &* 16, as: SIMD8<Int16>.self)
            let q = queryPairs[p]
            whole &+= multiplyAddPairs(v, q)
            high &+= multiplyAddPairs(v &>> 8, q)
        }
        return (whole &- (high &<< 8) &- SIMD4(repeating: lowBias), high)
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
