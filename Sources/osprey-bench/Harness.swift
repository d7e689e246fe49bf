#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Keeping results alive

/// Results are folded into this so the optimizer cannot drop the measured work.
nonisolated(unsafe) var benchSink: Float = 0

/// Consumes a value opaquely (never inlined, so the compiler must compute `x`).
@inline(never)
func consume(_ x: Float) {
    benchSink += x
}

// MARK: - Settings and statistics

/// How hard to measure.
struct BenchConfig {
    /// Timed repetitions per benchmark (the median and p90 are taken over these).
    var reps: Int
    /// Untimed repetitions before timing.
    var warmupReps: Int
    /// Each timed repetition runs enough operations to take about this long.
    var targetSampleNs: Double
    var quick: Bool

    static let full = BenchConfig(reps: 51, warmupReps: 5, targetSampleNs: 5e6, quick: false)
    static let quick = BenchConfig(reps: 5, warmupReps: 1, targetSampleNs: 5e5, quick: true)
}

/// Per-operation times of one benchmark, in nanoseconds.
struct Stats {
    var median: Double
    var p90: Double
    var min: Double
    /// Timed repetitions.
    var samples: Int
    /// Operations per timed repetition.
    var inner: Int

    init(perOpNs values: [Double], inner: Int) {
        let s = values.sorted()
        precondition(!s.isEmpty)
        let n = s.count
        median = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
        // Nearest-rank 90th percentile.
        let rank = Int((0.9 * Double(n)).rounded(.up))
        p90 = s[Swift.min(n, Swift.max(1, rank)) - 1]
        min = s[0]
        samples = n
        self.inner = inner
    }
}

extension Duration {
    var nanoseconds: Double {
        let (s, atto) = components
        return Double(s) * 1e9 + Double(atto) * 1e-9
    }
}

/// Times `body(inner)`, which must perform `inner` operations, and returns per-operation times.
///
/// `inner` is calibrated so one repetition takes about `config.targetSampleNs`, is at least
/// `minInner` and is a multiple of `innerMultiple`. `prepare` runs untimed before each repetition.
func measure(
    _ config: BenchConfig,
    innerMultiple: Int = 1,
    minInner: Int = 1,
    fixedInner: Int? = nil,
    prepare: () -> Void = {},
    _ body: (Int) -> Void
) -> Stats {
    let clock = ContinuousClock()
    func roundUp(_ x: Int) -> Int { (Swift.max(x, 1) + innerMultiple - 1) / innerMultiple * innerMultiple }
    var inner = roundUp(minInner)
    if let fixedInner {
        inner = fixedInner
    } else {
        // Calibrate: grow until one repetition is measurable, then scale to the target.
        var perOp = 0.0
        while true {
            prepare()
            let t = clock.measure { body(inner) }.nanoseconds
            perOp = t / Double(inner)
            if t >= config.targetSampleNs / 10 || inner >= 1 << 26 { break }
            inner = roundUp(inner * 4)
        }
        let target = Int((config.targetSampleNs / Swift.max(perOp, 0.01)).rounded(.up))
        inner = Swift.max(roundUp(minInner), roundUp(target))
    }
    for _ in 0..<config.warmupReps {
        prepare()
        body(inner)
    }
    var values = [Double]()
    values.reserveCapacity(config.reps)
    for _ in 0..<config.reps {
        prepare()
        let t = clock.measure { body(inner) }.nanoseconds
        values.append(t / Double(inner))
    }
    return Stats(perOpNs: values, inner: inner)
}

// MARK: - Formatting

/// A duration given in nanoseconds, with a unit that keeps 3 significant digits.
func formatNs(_ ns: Double) -> String {
    func sig(_ v: Double) -> String {
        if v >= 100 { return String(Int(v.rounded())) }
        if v >= 10 { return fixed(v, 1) }
        return fixed(v, 2)
    }
    if ns < 1_000 { return sig(ns) + " ns" }
    if ns < 1_000_000 { return sig(ns / 1_000) + " µs" }
    if ns < 1_000_000_000 { return sig(ns / 1_000_000) + " ms" }
    return sig(ns / 1_000_000_000) + " s"
}

/// `v` with `digits` decimals (no Foundation).
func fixed(_ v: Double, _ digits: Int) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let r = (abs(v) * scale).rounded()
    let whole = Int(r / scale)
    let frac = Int(r - Double(whole) * scale)
    var f = String(frac)
    while f.count < digits { f = "0" + f }
    return (v < 0 && r != 0 ? "-" : "") + String(whole) + (digits > 0 ? "." + f : "")
}

func ratio(_ a: Double, _ b: Double) -> String { fixed(a / b, a / b >= 100 ? 0 : 1) + "×" }

/// A markdown table row.
func row(_ cells: [String]) -> String { "| " + cells.joined(separator: " | ") + " |" }

func tableHeader(_ cells: [String]) -> String {
    row(cells) + "\n" + row(cells.indices.map { $0 == 0 ? ":---" : "---:" })
}

/// Writes a line to standard output immediately (so a long run shows progress when piped).
func emit(_ line: String = "") {
    print(line)
    fflush(nil)  // all output streams (stdout itself is not concurrency-safe to name)
}

/// Progress on standard error, so it does not end up in the results file.
func progress(_ line: String) {
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}
