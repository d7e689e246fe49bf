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
    /// Rounds over all benchmarks; every round runs each benchmark's warm-up and timed
    /// repetitions, so each benchmark's samples are spread over the whole run.
    var rounds: Int
    /// Timed repetitions per benchmark per round.
    var repsPerRound: Int
    /// Untimed repetitions per benchmark per round, before its timed ones (re-warms caches).
    var warmupPerRound: Int
    /// Each timed repetition runs enough operations to take about this long.
    var targetSampleNs: Double
    var quick: Bool

    var reps: Int { rounds * repsPerRound }

    static let full = BenchConfig(rounds: 6, repsPerRound: 8, warmupPerRound: 1, targetSampleNs: 5e6, quick: false)
    static let quick = BenchConfig(rounds: 1, repsPerRound: 5, warmupPerRound: 1, targetSampleNs: 5e5, quick: true)
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

/// One benchmark: `body(inner)` must perform `inner` operations; `prepare` runs untimed before
/// every repetition. Per-operation times accumulate in ``samples``.
final class Benchmark {
    let label: String
    let innerMultiple: Int
    let minInner: Int
    let fixedInner: Int?
    let prepare: () -> Void
    let body: (Int) -> Void
    private(set) var inner = 1
    private(set) var samples: [Double] = []

    init(
        _ label: String, innerMultiple: Int = 1, minInner: Int = 1, fixedInner: Int? = nil,
        prepare: @escaping () -> Void = {}, body: @escaping (Int) -> Void
    ) {
        self.label = label
        self.innerMultiple = innerMultiple
        self.minInner = minInner
        self.fixedInner = fixedInner
        self.prepare = prepare
        self.body = body
    }

    var stats: Stats { Stats(perOpNs: samples, inner: inner) }

    private func roundUp(_ x: Int) -> Int { (max(x, 1) + innerMultiple - 1) / innerMultiple * innerMultiple }

    /// Picks `inner` so one repetition takes about `targetNs`: at least `minInner`, a multiple
    /// of `innerMultiple` (or exactly `fixedInner`).
    func calibrate(targetNs: Double) {
        if let fixedInner {
            inner = fixedInner
            prepare()
            body(inner)
            return
        }
        let clock = ContinuousClock()
        inner = roundUp(minInner)
        var perOp = 0.0
        while true {
            prepare()
            let t = clock.measure { body(inner) }.nanoseconds
            perOp = t / Double(inner)
            if t >= targetNs / 10 || inner >= 1 << 26 { break }
            inner = roundUp(inner * 4)
        }
        inner = max(roundUp(minInner), roundUp(Int((targetNs / max(perOp, 0.01)).rounded(.up))))
    }

    /// Untimed warm-up repetitions, then timed ones.
    func run(warmup: Int, reps: Int) {
        let clock = ContinuousClock()
        for _ in 0..<warmup {
            prepare()
            body(inner)
        }
        for _ in 0..<reps {
            prepare()
            let t = clock.measure { body(inner) }.nanoseconds
            samples.append(t / Double(inner))
        }
    }
}

/// Calibrates every benchmark, then runs `config.rounds` rounds over all of them, so a burst of
/// outside load lands on a few samples of many benchmarks rather than on all samples of one.
func runInterleaved(_ benchmarks: [Benchmark], config: BenchConfig) {
    for (i, b) in benchmarks.enumerated() {
        progress("calibrating \(i + 1)/\(benchmarks.count): \(b.label)")
        b.calibrate(targetNs: config.targetSampleNs)
    }
    for round in 1...config.rounds {
        progress("round \(round)/\(config.rounds)")
        for b in benchmarks {
            b.run(warmup: config.warmupPerRound, reps: config.repsPerRound)
        }
    }
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
