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
}
