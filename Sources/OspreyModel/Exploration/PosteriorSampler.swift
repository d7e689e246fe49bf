import OspreyMath

/// Draws user weights from the ridge posterior `N(w, σ² A⁻¹)` for Thompson sampling.
///
/// With the Cholesky factor `A = L Lᵀ` (from the Gram matrix the ridge state keeps, in `Double`),
/// `x = L⁻ᵀ z` for `z ~ N(0, I)` has covariance `L⁻ᵀ L⁻¹ = A⁻¹`, so `w̃ = w + σ x` is one draw.
/// Factoring is O(d³/3) once per request; each draw is O(d²) (one back substitution).
public struct PosteriorSampler: Sendable {
    public let dimension: Int
    public let stride: Int
    /// `L`, `dimension × dimension` row-major (lower triangle), or nil when `A` could not be
    /// factored and the sampler falls back to the diagonal of `A⁻¹`.
    let factor: [Double]?
    let diagonalStd: [Double]
    let mean: [Float]

    /// Prepares draws around `ridge.weights`. O(d³).
    public init(ridge: RidgeState) {
        let d = ridge.dimension, s = ridge.stride
        dimension = d
        stride = s
        mean = ridge.weights
        var a = ridge.gramMatrix()
        if (try? Cholesky.factor(&a, n: d)) != nil {
            factor = a
        } else {
            factor = nil
        }
        diagonalStd = (0..<d).map { Double(max(ridge.inverse[$0 * s + $0], 0)).squareRoot() }
    }

    /// One draw `w̃ ~ N(w, σ² A⁻¹)`, padded to ``stride`` with zeros, written into `out`. O(d²).
    public func sample(sigma: Double, into out: inout [Float], using rng: inout SplitMix64) {
        let d = dimension
        if out.count != stride { out = [Float](repeating: 0, count: stride) }
        var x = (0..<d).map { _ in rng.nextGaussian() }
        if let l = factor {
            // Solve Lᵀ x = z by back substitution.
            for i in Swift.stride(from: d - 1, through: 0, by: -1) {
                var t = x[i]
                for k in (i + 1)..<max(i + 1, d) { t -= l[k * d + i] * x[k] }
                x[i] = t / l[i * d + i]
            }
        } else {
            for i in 0..<d { x[i] *= diagonalStd[i] }
        }
        for i in 0..<d { out[i] = mean[i] + Float(sigma * x[i]) }
        for i in d..<stride { out[i] = 0 }
    }
}
