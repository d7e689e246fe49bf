/// An item table quantized to 8 bits per value for whole-catalogue top-k scans, with a rigorous
/// per-item error bound, next to the exact Float32 row-major table it was built from.
///
/// A scan (``selectTopK(query:excluding:into:)``) reads 1 byte per value instead of 4 and gets,
/// per item, an approximate score `s̃` and a bound `e` with `|ŝ − s̃| ≤ e`, where `ŝ` is the
/// Float32 score the blocked scan (``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)``)
/// computes. Only items whose upper bound `s̃ + e` reaches the k-th best lower bound `s̃ − e` can
/// be in the top k; those few are rescored exactly from the Float32 table, so the answer is the
/// exact top k (the same items and scores as a full sort of the Float32 scores, ties by index).
///
/// Layout: blocks of 8 items. Each block is a 96-byte header (8 `Float` scales, 8 radii, 8
/// offsets; NaN offset for padding and exactly-scanned rows) followed by `pairs` groups of 16
/// bytes (see ``Int8Kernels/blockDots(level:blocks:blockBytes:headerBytes:blockCount:queryPairs:pairs:lowBias:out:)``), one sequential stream. Item `i`
/// stores `x̃ = round(x / sᵢ)` with `sᵢ = max|x|/127`.
///
/// Error bound (Q = ‖q‖₂, nᵢ = ‖xᵢ‖₂, rᵢ = ‖xᵢ − sᵢx̃ᵢ‖₂, the query quantized with step σ to q̃,
/// u = 2⁻²⁴, G = γ_{d+16} = (d+16)u / (1 − (d+16)u)):
/// - quantization: `|q·x − σq̃·sx̃| ≤ ‖σq̃‖·r + ‖q − σq̃‖·n ≤ Q·((1+ε)r + εn)` once the query
///   check `‖q − σq̃‖ ≤ εQ` passes (ε = √(2·pairs) / q̃max, twice the rounding bound);
/// - Float32 rounding of the exact score (d+1 terms) and of the approximate one (4 operations,
///   then `± e`): at most `G·(3|o| + 6Q(n + r))`, plus 2⁻¹⁰⁰ for underflow.
/// So `e = Q·ρᵢ + κ` with `ρᵢ = (1+2⁻¹⁰)((1+ε+6G)rᵢ + (ε+6G)nᵢ)` stored per item and
/// `κ = (1+2⁻¹⁰)·3G·max|o| + 2⁻¹⁰⁰`, both rounded up; the `1+2⁻¹⁰` covers rounding in `Q·ρ + κ`.
/// Items with a non-finite or huge (> 10³⁰) value, norm or offset are not quantized but always
/// scored exactly; a query that is non-finite or could overflow the bounds falls back to an
/// exact scan. Memory: `d` (rounded up to even) + 12 bytes per item, against 4·d for the
/// Float32 blocked table.
public struct QuantizedItemTable: Sendable {
    /// Items in the table.
    public let rows: Int
    /// Values per item (the feature dimension, unpadded).
    public let dimension: Int
    /// Floats per row of ``exactTable``.
    public let stride: Int
    /// Pairs of dimensions per block: `(dimension + 1) / 2`.
    public let pairs: Int
    /// Bytes per block of 8 items: the 96-byte header plus `16 · pairs`.
    public let blockBytes: Int
    /// The quantized blocks.
    public let blocks: [UInt8]
    /// The exact row-major table (`rows · stride` floats), shared with its owner, not copied.
    public let exactTable: [Float]
    /// Per-item offsets added to every score, shared with its owner.
    public let offsets: [Float]
    /// Rows that are never quantized and always scored exactly (non-finite or huge values), ascending.
    public let exactRows: [Int]
    /// The largest magnitude of a quantized query value; keeps `Σ |q̃||x̃|` below 2³¹.
    public let queryLevels: Int
    /// ε of the error bound: `√(2·pairs) / queryLevels`.
    public let epsilon: Double
    /// κ of the error bound (the query-independent part).
    public let slack: Float
    /// The largest ‖xᵢ‖₂ of a quantized item, for the query overflow check.
    public let maxNorm: Double

    static let headerBytes = 96
    static let itemLevels = 127
    /// Values, norms and offsets above this are scored exactly, and queries with ‖q‖·max‖x‖ above
    /// it take the exact scan, so no Float32 bound or approximate score can overflow.
    static let hugeLimit = 1e30

    /// γ_m of floating-point error analysis for Float32: `m·u / (1 − m·u)`.
    static func gamma(_ m: Int) -> Double {
        let mu = Double(m) * 0x1p-24
        return mu / (1 - mu)
    }

    /// `v` (|v| < 2³¹) rounded to the nearest integer, halves away from zero. `Double.rounded()`
    /// is a libm call on the default x86-64 target (no SSE4.1 `roundsd`); this is a truncating
    /// conversion. Exact for |v| < 2⁵¹.
    @inline(__always)
    static func roundedToInteger(_ v: Double) -> Double {
        Double(Int64(v < 0 ? v - 0.5 : v + 0.5))
    }

    /// `x` as a Float no smaller than `x`.
    static func roundedUp(_ x: Double) -> Float {
        let f = Float(x)
        return Double(f) >= x ? f : f.nextUp
    }

    /// Quantizes `rows` rows of `stride` floats (the first `dimension` used) with their offsets.
    /// O(rows · dimension) time; `rows/8 · (96 + 16·⌈d/2⌉)` bytes.
    /// - Precondition: `table.count == rows · stride`, `offsets.count == rows`, `dimension ≤ stride`.
    public init(table: [Float], offsets: [Float], rows: Int, stride: Int, dimension d: Int) {
        precondition(table.count == rows * stride && offsets.count == rows && d <= stride, "table shape mismatch")
        self.rows = rows
        self.dimension = d
        self.stride = stride
        self.exactTable = table
        self.offsets = offsets
        let pairs = (d + 1) / 2
        self.pairs = pairs
        let blockBytes = Self.headerBytes + 16 * pairs
        self.blockBytes = blockBytes
        let levels = max(1, min(Int(Int16.max), Int(Int32.max) / (Self.itemLevels * max(1, 2 * pairs))))
        queryLevels = levels
        let epsilon = Double(2 * pairs).squareRoot() / Double(levels)
        self.epsilon = epsilon
        let g = Self.gamma(d + 16)
        let grow = 1 + 0x1p-10

        let blockCount = (rows + 7) / 8
        var bytes = [UInt8](repeating: 0, count: blockCount * blockBytes)
        var exactRows: [Int] = []
        var maxNorm = 0.0, maxOffset = 0.0
        bytes.withUnsafeMutableBytes { raw in
            // Padding lanes of the last block: NaN offsets, so they never become candidates.
            for i in rows..<(blockCount * 8) {
                raw.storeBytes(of: Float.nan, toByteOffset: (i / 8) * blockBytes + 64 + (i % 8) * 4, as: Float.self)
            }
            for i in 0..<rows {
                let block = (i / 8) * blockBytes, lane = i % 8
                let row = i * stride, offset = offsets[i]
                var finite = offset.isFinite && Double(abs(offset)) <= Self.hugeLimit
                var norm2 = 0.0
                var maxAbs: Float = 0
                for k in 0..<d {
                    let x = table[row + k]
                    if !x.isFinite { finite = false }
                    norm2 += Double(x) * Double(x)
                    maxAbs = max(maxAbs, abs(x))
                }
                let norm = norm2.squareRoot()
                guard finite, norm <= Self.hugeLimit else {
                    exactRows.append(i)
                    raw.storeBytes(of: Float.nan, toByteOffset: block + 64 + lane * 4, as: Float.self)
                    continue
                }
                let scale = Float(Double(maxAbs) / Double(Self.itemLevels))
                var residual2 = 0.0
                for k in 0..<d {
                    let x = Double(table[row + k])
                    var level = 0.0
                    if scale > 0 {
                        level = Self.roundedToInteger(min(Double(Self.itemLevels), max(-Double(Self.itemLevels), x / Double(scale))))
                    }
                    let e = x - Double(scale) * level
                    residual2 += e * e
                    let (p, c) = (k / 2, k % 2)
                    let at = block + Self.headerBytes + p * 16 + 2 * (2 * (lane % 4) + c) + lane / 4
                    // Low-byte items (lanes 0–3) are stored plus 128, see Int8Kernels.blockDots.
                    raw.storeBytes(of: UInt8(truncatingIfNeeded: Int(level) + (lane < 4 ? 128 : 0)), toByteOffset: at, as: UInt8.self)
                }
                let residual = residual2.squareRoot()
                let rho = grow * ((1 + epsilon + 6 * g) * residual + (epsilon + 6 * g) * norm)
                raw.storeBytes(of: scale, toByteOffset: block + lane * 4, as: Float.self)
                raw.storeBytes(of: Self.roundedUp(rho), toByteOffset: block + 32 + lane * 4, as: Float.self)
                raw.storeBytes(of: offset, toByteOffset: block + 64 + lane * 4, as: Float.self)
                maxNorm = max(maxNorm, norm)
                maxOffset = max(maxOffset, Double(abs(offset)))
            }
        }
        blocks = bytes
        self.exactRows = exactRows
        self.maxNorm = maxNorm
        slack = Self.roundedUp(grow * 3 * g * maxOffset + 0x1p-100)
    }

    /// Bytes held by this table beyond the shared exact table and offsets.
    public var byteCount: Int { blocks.count + exactRows.count * MemoryLayout<Int>.stride }
}
