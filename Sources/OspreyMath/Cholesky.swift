/// Dense symmetric positive-definite solves in `Double`, used where exactness matters more than
/// speed: ALS per-row solves, refactorizing a user's ridge inverse, and test references.
public enum Cholesky {
    /// An error raised when a matrix is not symmetric positive definite.
    public struct NotPositiveDefinite: Error, CustomStringConvertible {
        public let pivot: Int
        public var description: String { "matrix is not positive definite (pivot \(pivot))" }
    }

    /// Factors the `n × n` row-major matrix `a` in place into its lower Cholesky factor L
    /// (`a = L Lᵀ`); the strict upper triangle is left untouched. O(n³/3).
    /// - Throws: ``NotPositiveDefinite`` when a pivot is not positive.
    public static func factor(_ a: inout [Double], n: Int) throws {
        try a.withUnsafeMutableBufferPointer { m in
            for j in 0..<n {
                var diag = m[j * n + j]
                for k in 0..<j { diag -= m[j * n + k] * m[j * n + k] }
                guard diag > 0, diag.isFinite else { throw NotPositiveDefinite(pivot: j) }
                let ljj = diag.squareRoot()
                m[j * n + j] = ljj
                for i in (j + 1)..<max(j + 1, n) {
                    var s = m[i * n + j]
                    for k in 0..<j { s -= m[i * n + k] * m[j * n + k] }
                    m[i * n + j] = s / ljj
                }
            }
        }
    }

    /// Solves `L Lᵀ x = b` in place given a factor from ``factor(_:n:)``. O(n²).
    public static func solve(factor l: [Double], n: Int, _ b: inout [Double]) {
        for i in 0..<n {
            var s = b[i]
            for k in 0..<i { s -= l[i * n + k] * b[k] }
            b[i] = s / l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var s = b[i]
            for k in (i + 1)..<max(i + 1, n) { s -= l[k * n + i] * b[k] }
            b[i] = s / l[i * n + i]
        }
    }

    /// Solves the symmetric positive-definite system `a x = b`. O(n³).
    public static func solve(_ a: [Double], n: Int, _ b: [Double]) throws -> [Double] {
        var l = a
        try factor(&l, n: n)
        var x = b
        solve(factor: l, n: n, &x)
        return x
    }

    /// The inverse of the symmetric positive-definite `n × n` matrix `a`, row-major:
    /// `A⁻¹ = L⁻ᵀ L⁻¹` from the Cholesky factor, inverting the triangle once and using symmetry.
    /// About n³/2 multiply-adds in all. O(n³).
    public static func inverse(_ a: [Double], n: Int) throws -> [Double] {
        var l = a
        try factor(&l, n: n)
        // M = L⁻¹, lower triangular, by forward substitution column by column.
        var m = [Double](repeating: 0, count: n * n)
        for j in 0..<n {
            m[j * n + j] = 1 / l[j * n + j]
            for i in (j + 1)..<max(j + 1, n) {
                var s = 0.0
                for k in j..<i { s += l[i * n + k] * m[k * n + j] }
                m[i * n + j] = -s / l[i * n + i]
            }
        }
        // A⁻¹[i][j] = Σ_{k ≥ max(i, j)} M[k][i] · M[k][j], filled in for j ≥ i and mirrored.
        var inv = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n {
                var s = 0.0
                for k in j..<n { s += m[k * n + i] * m[k * n + j] }
                inv[i * n + j] = s
                inv[j * n + i] = s
            }
        }
        return inv
    }
}
