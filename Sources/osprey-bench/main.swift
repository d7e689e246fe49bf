// osprey-bench: in-process benchmarks reproducing the two latency figures of the Velox paper.
//
//   Figure 2 — online update latency vs d: Sherman–Morrison (`RidgeState.update`, amortized over
//              its periodic refactor) against re-solving from the Gram matrix per observation.
//   Figure 3 — top-k (k = 10) latency vs candidate-set size for d ∈ {10, 50, 100}: blocked
//              Float32 scoring + bounded heap, and the 8-bit quantized scan with error bounds +
//              exact rescoring (QuantizedItemTable), against scoring + a full sort.
//   plus a d = 50 dot product for orientation.
//
// Usage: osprey-bench [--quick] [--figure3 | --caches] [--build-label TEXT] [--note TEXT]...
//        osprey-bench --tiers-build DIR USERS [rdg2] | --tiers-measure DIR HOT_USERS|all SAMPLES   (bench/tiers.sh)
//        osprey-bench --decision-log DIR CAP   (the decision log's write path, into a fresh store in DIR)
// Prints markdown to standard output; progress goes to standard error.

import OspreyMath

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var config = BenchConfig.full
var buildLabel: String?
var notes = [String]()
var cacheStudy = false
var onlyFigure3 = false
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    switch argument {
    case "--quick":
        config = .quick
    case "--caches":
        cacheStudy = true
    case "--figure3":
        onlyFigure3 = true
    case "--build-label":
        buildLabel = arguments.next()
    case "--note":
        if let note = arguments.next() { notes.append(note) }
    case "--tiers-build", "--tiers-measure":
        let rest = Array(CommandLine.arguments.drop { $0 != argument }.dropFirst())
        do {
            if argument == "--tiers-build", rest.count == 2 || rest.count == 3, let users = Int(rest[1]) {
                try TierBench.build(directory: rest[0], users: users, legacyFormat: rest.count == 3 && rest[2] == "rdg2")
            } else if argument == "--tiers-measure", rest.count == 3, let samples = Int(rest[2]),
                      let hot = rest[1] == "all" ? Int.max : Int(rest[1]) {
                try TierBench.measure(directory: rest[0], hotUsers: hot, samples: samples)
            } else {
                progress("usage: osprey-bench --tiers-build DIR USERS [rdg2] | --tiers-measure DIR HOT_USERS|all SAMPLES")
                exit(2)
            }
        } catch {
            progress("osprey-bench: \(error)")
            exit(1)
        }
        exit(0)
    case "--decision-log":
        let rest = Array(CommandLine.arguments.drop { $0 != argument }.dropFirst())
        guard rest.count == 2, let cap = Int(rest[1]), cap >= 1_000 else {
            progress("usage: osprey-bench --decision-log DIR CAP   (CAP at least 1000)")
            exit(2)
        }
        do {
            try DecisionLogBench.run(directory: rest[0], cap: cap)
        } catch {
            progress("osprey-bench: \(error)")
            exit(1)
        }
        exit(0)
    case "-h", "--help":
        print("usage: osprey-bench [--quick] [--figure3 | --caches] [--build-label TEXT] [--note TEXT]...")
        print("  --quick             far fewer repetitions (a smoke test; numbers are rough)")
        print("  --caches            instead of the figures, the prediction cache's eviction-policy study")
        print("  --figure3           run only figure 3 (top-k), not the dot product and figure 2")
        print("  --tiers-build DIR USERS [rdg2]          write a synthetic d=50 store of USERS users (bench/tiers.sh)")
        print("  --tiers-measure DIR HOT|all SAMPLES     start a manager on it in-process; time SAMPLES cold-user rebuilds")
        print("  --decision-log DIR CAP                  time the decision log's writes: fill a fresh store to CAP, then at CAP")
        print("  --build-label TEXT  describe the build settings (default: read from the SwiftPM build description)")
        print("  --note TEXT         add a line to the header (e.g. the source revision measured)")
        exit(0)
    default:
        progress("osprey-bench: unknown argument \(argument) (try --help)")
        exit(2)
    }
}

if cacheStudy {
    CacheStudy.run(quick: config.quick)
    exit(0)
}

let clock = ContinuousClock()
let started = clock.now
let cpuAtStart = Machine.cpuSeconds()
let target = Machine.targetCPU

emit("# Osprey benchmarks: Velox figures 2 and 3 (osprey-bench)")
emit()
emit("- Machine: `nproc` = \(Machine.processors), CPU: \(Machine.cpuModel) (host SIMD flags: \(Machine.simdFlags))")
emit("- Build: \(Machine.optimization), target CPU: \(buildLabel ?? target.description); \(Machine.compiler); OspreyMath kernels are SIMD8<Float>")
for note in notes { emit("- Note: \(note)") }
emit("- Load average at start: \(Machine.loadAverage)")
emit("- Mode: \(config.quick ? "**quick (smoke test; numbers are rough)**" : "full")")
emit("- Method: `ContinuousClock`, single thread. Each benchmark calibrates a batch of operations (≈ \(formatNs(config.targetSampleNs)) per repetition); each repetition's time is divided by its batch size. All benchmarks then run interleaved in \(config.rounds) round(s); per round each runs \(config.warmupPerRound) untimed warm-up repetition(s), then \(config.repsPerRound) timed ones (\(config.reps) timed repetitions in all), so a burst of outside load cannot skew one benchmark alone. Reported: **median** and **p90** (nearest rank) of the per-operation times.")
emit()

// MARK: Build and run every benchmark

progress("preparing data …")
let dotBench = DotBench.make(d: 50)
let figure2 = onlyFigure3 ? [] : [10, 20, 50, 100, 200].map { Figure2.make(d: $0) }
let figure3 = [10, 50, 100].flatMap { d in [100, 1_000, 10_000, 100_000].map { Figure3.make(d: d, n: $0) } }
let widths = [10_000, 100_000].flatMap { Figure3.kernelWidths(d: 50, n: $0) }
runInterleaved((onlyFigure3 ? [] : [dotBench]) + figure2.flatMap(\.all) + figure3.flatMap(\.all) + widths.map(\.benchmark), config: config)
for c in figure2 where c.pool.failures > 0 {
    progress("warning: d=\(c.d): \(c.pool.failures) refactor/solve failures (not positive definite)")
}
if !onlyFigure3 {
    let dot = dotBench.stats

    emit("## Orientation: dot product, d = 50 (stride 56)")
    emit()
    emit(tableHeader(["kernel", "median", "p90", "batch"]))
    emit(row(["`VectorKernels.dot`, d = 50 (throughput)", formatNs(dot.median), formatNs(dot.p90), String(dot.inner)]))
    emit()

    // MARK: Figure 2

    emit("## Figure 2: online update latency vs d")
    emit()
    emit("(a) Sherman–Morrison `RidgeState.update` (λ = 1, zero prior; features ‖f‖ ≈ 1, padded to the stride). *Amortized* batches are multiples of 2 × \(RidgeState.refactorInterval) updates, so each holds its share of the refactor every \(RidgeState.refactorInterval) updates; *no refactor* times batches of \(RidgeState.refactorInterval - 1) updates between refactors; `refactor()` is one O(d³) recompute of A⁻¹ and w in Double.")
    emit()
    emit(tableHeader(["d", "amortized median", "amortized p90", "no-refactor median", "no-refactor p90", "refactor() median", "refactor() p90", "refactor share of amortized", "batch (amortized)"]))
    for r in figure2 {
        let share = r.refactor.stats.median / Double(RidgeState.refactorInterval) / r.amortized.stats.median * 100
        emit(row([
            String(r.d), formatNs(r.amortized.stats.median), formatNs(r.amortized.stats.p90),
            formatNs(r.shermanMorrison.stats.median), formatNs(r.shermanMorrison.stats.p90),
            formatNs(r.refactor.stats.median), formatNs(r.refactor.stats.p90),
            fixed(share, 1) + " %", String(r.amortized.stats.inner),
        ]))
    }
    emit()
    emit("(b) Naive baseline: per observation, A += f fᵀ and b += t f in Double, then x = `Cholesky.solve(A, n: d, b)` (O(d³)).")
    emit()
    emit(tableHeader(["d", "naive median", "naive p90", "naive / SM amortized (median)", "batch"]))
    for r in figure2 {
        emit(row([
            String(r.d), formatNs(r.naive.stats.median), formatNs(r.naive.stats.p90),
            ratio(r.naive.stats.median, r.amortized.stats.median), String(r.naive.stats.inner),
        ]))
    }
    emit()
}

// MARK: Figure 3

emit("## Figure 3: top-k latency (k = \(Figure3.k)) vs candidate-set size")
emit()
emit("Random item table, per-item bias as `offsets`, one query per operation (16 queries cycled). *Score only*: the Float32 path's `VectorKernels.scoreBlocks` over the table laid out in blocks of 8 items (`blockRows`), \(Figure3.block) items at a time into a buffer. *Top-10 (Float32)*: that + `TopKSelector(k: 10).offer(scores:base:)` per chunk + `sorted()` (the serving path below 2,048 items). *Top-10 (int8 + bounds)*: `QuantizedItemTable.selectTopK` — one pass over the 8-bit table computing approximate scores and rigorous error bounds, exact Float32 rescoring of the candidates whose upper bound reaches the k-th best lower bound — + `sorted()`. *Full sort* (baseline): score the row-major table with `scoreRows`, then `sorted(by:)` on all (score, index) pairs and take 10. *Same answer*: ✓ = Float32 top-10 items equal the full sort's first 10 (scores to 1e-4 relative) and int8 top-10 equals Float32 top-10 exactly (items and score bits), for all 16 queries. Bytes per item: the scan's table (Float32 blocked + offsets, or the int8 blocks with their headers).")
emit()
emit(tableHeader(["d", "items", "score only (median)", "top-10 Float32 median", "top-10 Float32 p90", "top-10 int8 median", "top-10 int8 p90", "Float32 / int8", "full sort median", "full sort / int8", "bytes per item F32 → int8", "same answer"]))
for r in figure3 {
    emit(row([
        String(r.d), String(r.n), formatNs(r.scoreOnly.stats.median),
        formatNs(r.topK.stats.median), formatNs(r.topK.stats.p90),
        formatNs(r.quantized.stats.median), formatNs(r.quantized.stats.p90),
        ratio(r.topK.stats.median, r.quantized.stats.median),
        formatNs(r.fullSort.stats.median), ratio(r.fullSort.stats.median, r.quantized.stats.median),
        fixed(r.blockedBytesPerItem, 0) + " → " + fixed(r.quantizedBytesPerItem, 0),
        (r.agrees ? "✓" : "✗ MISMATCH (Float32 vs full sort)") + (r.quantizedAgrees ? " ✓" : " ✗ MISMATCH (int8 vs Float32)"),
    ]))
}
emit()
emit("### The integer kernel's width")
emit()
emit("The same int8 top-10 (d = 50) with the integer dot products at each instruction-set width this machine runs (`Int8Kernels.Level`, chosen from CPUID at run time; the widest, \(Int8Kernels.Level.best), serves). *Same answer*: items and score bits equal the widest level's for all 16 queries.")
emit()
emit(tableHeader(["items", "kernel", "median", "p90", "vs SSE2 (the x86-64 baseline)", "same answer"]))
for w in widths {
    let baseline = widths.first { $0.n == w.n && $0.level == .sse2 }
    emit(row([String(w.n), w.level.description, formatNs(w.benchmark.stats.median), formatNs(w.benchmark.stats.p90),
              baseline.map { ratio($0.benchmark.stats.median, w.benchmark.stats.median) } ?? "–", w.agrees ? "✓" : "✗ MISMATCH"]))
}
emit()

// MARK: Targets

emit("## Targets")
emit()
emit(tableHeader(["target", "measured median", "p90", "met (median)"]))
if let u = figure2.first(where: { $0.d == 50 }) {
    emit(row(["online update, d = 50, amortized ≤ 1 µs", formatNs(u.amortized.stats.median), formatNs(u.amortized.stats.p90),
              u.amortized.stats.median <= 1_000 ? "yes" : "**no** (\(ratio(u.amortized.stats.median, 1_000)) the target)"]))
}
if let t = figure3.first(where: { $0.d == 50 && $0.n == 10_000 }) {
    emit(row(["top-10 of 10,000 items, d = 50 ≤ 60 µs (int8 + bounds)", formatNs(t.quantized.stats.median), formatNs(t.quantized.stats.p90),
              t.quantized.stats.median <= 60_000 ? "yes" : "**no** (\(ratio(t.quantized.stats.median, 60_000)) the target)"]))
}
if let t = figure3.first(where: { $0.d == 50 && $0.n == 100_000 }) {
    emit(row(["top-10 of 100,000 items, d = 50 ≤ 500 µs (int8 + bounds)", formatNs(t.quantized.stats.median), formatNs(t.quantized.stats.p90),
              t.quantized.stats.median <= 500_000 ? "yes" : "**no** (\(ratio(t.quantized.stats.median, 500_000)) the target)"]))
}
emit()
let elapsed = (clock.now - started).nanoseconds
if let a = cpuAtStart, let b = Machine.cpuSeconds() {
    let others = max(0, (b.machine - a.machine) - (b.this - a.this))
    let share = others / (elapsed / 1e9) * 100
    emit("Other processes used \(fixed(others, 1)) CPU-seconds during the run (\(fixed(share, 0)) % of one core on average, out of \(Machine.processors * 100) %): \(share < 10 ? "the machine was quiet" : "**the machine was busy; treat the numbers as contended**").")
    emit()
}
emit("Total run time \(formatNs(elapsed)); load average at end: \(Machine.loadAverage). (checksum \(benchSink.isFinite ? "ok" : "non-finite"))")
