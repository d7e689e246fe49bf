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

    /// The inverse of the symmetric positive-definite `n × n` matrix `a`, row-major. O(n³).
    public static func inverse(_ a: [Double], n: Int) throws -> [Double] {
        var l = a
        try factor(&l, n: n)
        var inv = [Double](repeating: 0, count: n * n)
        var column = [Double](repeating: 0, count: n)
        for j in 0..<n {
            for i in 0..<n { column[i] = i == j ? 1 : 0 }
            solve(factor: l, n: n, &column)
            for i in 0..<n { inv[i * n + j] = column[i] }
        }
        return inv
    }
}
