import Foundation
import OspreyStorage

/// The decision log's write path in-process: `SQLiteDecisionStore.appendDecisions` as the server's
/// decision log calls it (batches of `batch`, ten greedy items each, ids like the server's), into
/// a fresh store in `directory`, first filling it to `cap` decisions, then at the cap, where each
/// batch also deletes as many of the oldest. Prints wall time and this process's CPU time per
/// decision for both phases (the CPU is what the log takes from the requests on a busy machine).
enum DecisionLogBench {
    static func run(directory: String, cap: Int, batch: Int = 1_000) throws {
        precondition(cap >= batch && batch > 0, "cap at least one batch")
        guard !SQLiteStores.exists(in: directory) else {
            progress("osprey-bench: \(directory) already holds a store; give a fresh directory")
            exit(2)
        }
        let store = try SQLiteStores(directory: directory).decisions
        let prefix = "3f09a1c2b7e4-"
        var counter = 0
        var rng = SystemRandomNumberGenerator()
        func nextBatch() -> [DecisionRecord] {
            (0..<batch).map { _ in
                counter += 1
                let hex = String(counter, radix: 16)
                let items = (0..<10).map { i in
                    DecisionRecord.Shown(item: "i\(Int.random(in: 0..<10_000, using: &rng))", score: 4.5 - Float(i) * 0.1, propensity: 1)
                }
                return DecisionRecord(eventId: prefix + String(repeating: "0", count: max(0, 12 - hex.count)) + hex, model: "bench",
                                      version: 1, uid: "u\(Int.random(in: 0..<100_000, using: &rng))", policy: "greedy",
                                      time: Date().timeIntervalSince1970, items: items, candidates: nil)
            }
        }
        func phase(_ name: String, batches: Int, keep: Int?) throws {
            let clock = ContinuousClock()
            var wall = Duration.zero, cpuSeconds = 0.0
            for b in 0..<batches {
                let decisions = nextBatch()  // not timed
                let cpu = processCPUSeconds(), start = clock.now
                try store.appendDecisions(decisions, trimBefore: nil, trimKeep: keep)
                wall += clock.now - start
                cpuSeconds += processCPUSeconds() - cpu
                if (b + 1) % 100 == 0 { progress("  \(name): \(b + 1)/\(batches) batches") }
            }
            let n = Double(batches * batch)
            print(String(format: "| %@ | %d | %.2f | %.2f |", name, batches * batch,
                         (Double(wall.components.seconds) + Double(wall.components.attoseconds) * 1e-18) * 1e6 / n,
                         cpuSeconds * 1e6 / n))
        }
        /// User and system CPU time of this process, in seconds (nanosecond resolution).
        func processCPUSeconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
            return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
        }
        print("| phase | decisions | wall µs/decision | CPU µs/decision |")
        print("|---|---:|---:|---:|")
        try phase("filling to the cap", batches: cap / batch, keep: nil)
        try phase("at the cap (each batch deletes as many)", batches: cap / batch, keep: cap)
    }
}
