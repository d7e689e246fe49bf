/// SIMD kernels over `Float` buffers.
///
/// Plain Swift float loops do not vectorize (strict IEEE order), so every hot loop here is written
/// with explicit `SIMD8<Float>` lanes. Buffers passed to these kernels have a length that is a
/// multiple of 8 (see ``paddedStride(_:)``); the padding lanes hold zeros, so they never change a
/// result. `a + b * c` is used instead of `addingProduct` because the default x86-64 target has no
/// FMA instruction and a fused multiply-add would become a library call.
public enum VectorKernels {
    /// The number of `Float` lanes per SIMD step.
    public static let lanes = 8

    /// Rounds `dimension` up to a multiple of 8 so rows can be read in whole SIMD8 steps.
    @inlinable
    public static func paddedStride(_ dimension: Int) -> Int {
        (dimension + lanes - 1) / lanes * lanes
    }

    /// The dot product of `count` floats at `a` and `b`; `count` must be a multiple of 8. O(count).
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = SIMD8<Float>.zero
        var acc1 = SIMD8<Float>.zero
        var i = 0
        let rawA = UnsafeRawPointer(a)
        let rawB = UnsafeRawPointer(b)
        while i + 16 <= count {
            acc0 += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc1 += rawA.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
                * rawB.loadUnaligned(fromByteOffset: (i + 8) * 4, as: SIMD8<Float>.self)
            i += 16
        }
        if i < count {
            acc0 += rawA.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
                * rawB.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        }
        return (acc0 + acc1).sum()
    }

    /// `y += alpha * x` over `count` floats; `count` must be a multiple of 8. O(count).
    @inlinable @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        let a = SIMD8<Float>(repeating: alpha)
        let rawX = UnsafeRawPointer(x)
        let rawY = UnsafeMutableRawPointer(y)
        var i = 0
        while i < count {
            let xv = rawX.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            let yv = rawY.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            rawY.storeBytes(of: yv + a * xv, toByteOffset: i * 4, as: SIMD8<Float>.self)
            i += lanes
        }
    }

    /// Scores `rows` consecutive rows of a row-major matrix against `query`:
    /// `out[r] = offsets[r] + matrix[r] · query`. O(rows · stride).
    @inlinable
    public static func scoreRows(
        matrix: UnsafePointer<Float>, stride: Int, rows: Int,
        query: UnsafePointer<Float>, offsets: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
    ) {
        for r in 0..<rows {
            out[r] = offsets[r] + dot(matrix + r * stride, query, count: stride)
        }
    }

    /// Lays a row-major table (`rows` rows of `stride` floats) out in blocks of 8 rows, dimension
    /// by dimension (`blocked[(b·dimension + k)·8 + lane] = table[(8b + lane)·stride + k]`), with
    /// the last block zero-padded. O(rows · dimension).
    public static func blockRows(_ table: [Float], rows: Int, stride: Int, dimension: Int) -> [Float] {
        let blocks = (rows + lanes - 1) / lanes
        var out = [Float](repeating: 0, count: blocks * dimension * lanes)
        for r in 0..<rows {
            let b = r / lanes, lane = r % lanes
            for k in 0..<dimension { out[(b * dimension + k) * lanes + lane] = table[r * stride + k] }
        }
        return out
    }

    /// Scores `blocks` blocks of 8 rows laid out by ``blockRows(_:rows:stride:dimension:)``:
    /// `out[8b + lane] = offsets[8b + lane] + Σ_k blocked[b][k][lane] · query[k]`.
    ///
    /// `broadcast` holds each query element repeated over 8 lanes (``broadcastQuery(_:dimension:into:)``),
    /// so eight rows share it and no horizontal sum is needed; four accumulators over interleaved
    /// k keep the additions independent, and the table is read in one sequential stream.
    /// O(blocks · 8 · dimension).
    @inlinable
    public static func scoreBlocks(
        blocked: UnsafePointer<Float>, dimension d: Int, blocks: Int,
        broadcast: UnsafePointer<SIMD8<Float>>, offsets: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
    ) {
        let raw = UnsafeRawPointer(blocked)
        let rawOffsets = UnsafeRawPointer(offsets)
        let rawOut = UnsafeMutableRawPointer(out)
        let blockBytes = d * lanes * 4
        for b in 0..<blocks {
            let p = raw + b * blockBytes
            var a0 = rawOffsets.loadUnaligned(fromByteOffset: b * 32, as: SIMD8<Float>.self)
            var a1 = SIMD8<Float>.zero, a2 = SIMD8<Float>.zero, a3 = SIMD8<Float>.zero
            var k = 0
            while k + 4 <= d {
                a0 += p.loadUnaligned(fromByteOffset: k * 32, as: SIMD8<Float>.self) * broadcast[k]
                a1 += p.loadUnaligned(fromByteOffset: (k + 1) * 32, as: SIMD8<Float>.self) * broadcast[k + 1]
                a2 += p.loadUnaligned(fromByteOffset: (k + 2) * 32, as: SIMD8<Float>.self) * broadcast[k + 2]
                a3 += p.loadUnaligned(fromByteOffset: (k + 3) * 32, as: SIMD8<Float>.self) * broadcast[k + 3]
                k += 4
            }
            while k < d {
                a0 += p.loadUnaligned(fromByteOffset: k * 32, as: SIMD8<Float>.self) * broadcast[k]
                k += 1
            }
            rawOut.storeBytes(of: (a0 + a1) + (a2 + a3), toByteOffset: b * 32, as: SIMD8<Float>.self)
        }
    }

    /// Fills `into[k]` with `query[k]` in all 8 lanes, for ``scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)``. O(d).
    @inlinable
    public static func broadcastQuery(_ query: UnsafePointer<Float>, dimension d: Int, into: UnsafeMutablePointer<SIMD8<Float>>) {
        for k in 0..<d { into[k] = SIMD8(repeating: query[k]) }
    }
}
