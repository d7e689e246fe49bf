import Foundation
import Logging
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// The decision log keeps what its retention says: decisions older than the age limit and the
/// oldest beyond the count limit are deleted, oldest first, in batches; the rest stay findable.
struct DecisionRetentionTests {
    /// `count` decisions one second apart starting at `start`, ids `e0`, `e1`, …
    func decisions(_ count: Int, start: Double) -> [DecisionRecord] {
        (0..<count).map { i in
            DecisionRecord(eventId: "e\(i)", model: "demo", version: 1, uid: "u\(i % 7)", policy: "greedy",
                           time: start + Double(i), items: [.init(item: "i1", score: 1, propensity: 1)], candidates: nil)
        }
    }

    func remaining(_ store: any DecisionStore, of count: Int) throws -> [Int] {
        try (0..<count).filter { try store.decision(eventId: "e\($0)") != nil }
    }

    @Test func theStoreDeletesByAgeAndByCountOldestFirst() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        try t.stores.decisions.appendDecisions(decisions(95, start: 1_000))
        // By age, in batches smaller than what goes: e0…e29 are older than 1,030.
        #expect(try t.stores.decisions.pruneDecisions(before: 1_030, keep: nil, batch: 7, maxBatches: .max) == 30)
        #expect(try remaining(t.stores.decisions, of: 95) == Array(30..<95))
        // Nothing more to delete by age.
        #expect(try t.stores.decisions.pruneDecisions(before: 1_030, keep: nil, batch: 7, maxBatches: .max) == 0)
        // By count: keep the newest 40.
        #expect(try t.stores.decisions.pruneDecisions(before: nil, keep: 40, batch: 8, maxBatches: .max) == 25)
        #expect(try remaining(t.stores.decisions, of: 95) == Array(55..<95))
        // Both at once: the stricter one wins (age deletes through e69).
        #expect(try t.stores.decisions.pruneDecisions(before: 1_070, keep: 30, batch: 1_000, maxBatches: .max) == 15)
        #expect(try remaining(t.stores.decisions, of: 95) == Array(70..<95))
        // New decisions after pruning are still appended and counted right.
        try t.stores.decisions.appendDecisions(decisions(100, start: 2_000).suffix(5))
        #expect(try t.stores.decisions.pruneDecisions(before: nil, keep: 10, batch: 3, maxBatches: .max) == 20)
        #expect(try remaining(t.stores.decisions, of: 100) == Array(90..<100))
        #expect(try t.stores.decisions.pruneDecisions(before: nil, keep: 0, batch: 4, maxBatches: .max) == 10)
        #expect(try remaining(t.stores.decisions, of: 100).isEmpty)
        #expect(try t.stores.decisions.pruneDecisions(before: 1e12, keep: 0) == 0)
    }

    @Test(arguments: TrainedStore.Backend.available)

    func theServersLogAppliesItsRetention(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend), metrics = RecordedMetrics()
        defer { t.remove() }
        let manager = try Manager(
            stores: try t.reopen(),
            configuration: .init(exploration: .init(decisionRetention: .init(maxAge: .seconds(3600), maxCount: 50))),
            metrics: metrics.engine, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let now = Date()
        // 60 decisions an hour and a half old, then 60 from the last minute.
        for d in decisions(60, start: now.timeIntervalSince1970 - 5_400) + decisions(120, start: now.timeIntervalSince1970 - 60).suffix(60) {
            manager.decisions.append(d)
        }
        await manager.decisions.flushed()
        // The write itself trims: the old 60 go by age, then 10 of the recent ones by count.
        #expect(metrics.count("osprey_decisions_pruned_total") == 70)
        #expect(metrics.count("osprey_decisions_written_total") == 120 && metrics.gauge("osprey_decisions_pending") == 0)
        #expect(try remaining(t.reopen().decisions, of: 120) == Array(70..<120))
        #expect(manager.decisions.prune(now: now) == 0)
        // A stricter retention over the same log (as after a restart with new limits) prunes the rest.
        let stricter = try Manager(
            stores: try t.reopen(), configuration: .init(exploration: .init(decisionRetention: .init(maxAge: nil, maxCount: 20))),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(stricter.decisions.prune(now: now) == 30)
        #expect(try remaining(t.reopen().decisions, of: 120) == Array(100..<120))
        // Kept forever: nothing is deleted.
        let keepAll = try Manager(
            stores: try t.reopen(), configuration: .init(exploration: .init(decisionRetention: .forever)),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(keepAll.decisions.prune(now: now.addingTimeInterval(1e9)) == 0)
    }

    /// A write trims at most twice what it appends, and pruning goes a bounded number of batches
    /// at a time, so neither turns into a burst of deletes.
    @Test func trimmingAndPruningAreBounded() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let all = decisions(40, start: 1_000)
        #expect(try t.stores.decisions.appendDecisions(Array(all[0..<10]), trimBefore: nil, trimKeep: 4) == 6)
        #expect(try remaining(t.stores.decisions, of: 40) == Array(6..<10))
        // One more decision may trim only two (the backlog shrinks as the log grows).
        #expect(try t.stores.decisions.appendDecisions([all[10]], trimBefore: nil, trimKeep: 0) == 2)
        #expect(try remaining(t.stores.decisions, of: 40) == Array(8..<11))
        // By age at write time; a limit that keeps everything trims nothing.
        #expect(try t.stores.decisions.appendDecisions(Array(all[11..<20]), trimBefore: 1_009.5, trimKeep: nil) == 2)
        #expect(try t.stores.decisions.appendDecisions(Array(all[20..<30]), trimBefore: 0, trimKeep: 1_000) == 0)
        #expect(try remaining(t.stores.decisions, of: 40) == Array(10..<30))
        // Pruning: two batches of 3, no more.
        #expect(try t.stores.decisions.pruneDecisions(before: nil, keep: 0, batch: 3, maxBatches: 2) == 6)
        #expect(try remaining(t.stores.decisions, of: 40) == Array(16..<30))
    }

    /// The background pruning deletes a backlog in steps of ``DecisionLog/pruneStep``, with a
    /// pause between them, until the retention holds; a second call while it runs does nothing.
    @Test func backgroundPruningClearsABacklogInSteps() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let backlog = 2 * DecisionLog.pruneStep + 500, metrics = RecordedMetrics()
        try t.stores.decisions.appendDecisions(decisions(backlog + 10, start: Date().timeIntervalSince1970))
        let manager = try Manager(
            stores: try t.reopen(),
            configuration: .init(exploration: .init(decisionRetention: .init(maxAge: nil, maxCount: 10))),
            metrics: metrics.engine, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        manager.decisions.pruneInBackground()
        manager.decisions.pruneInBackground()
        let deadline = ContinuousClock.now + .seconds(10)
        while metrics.count("osprey_decisions_pruned_total") < backlog, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        await manager.decisions.flushed()
        #expect(metrics.count("osprey_decisions_pruned_total") == backlog)
        #expect(try remaining(t.reopen().decisions, of: backlog + 10) == Array(backlog..<(backlog + 10)))
    }

    /// A process's event ids sort as strings in the order they were issued (past the 16th and
    /// the 4096th), so the log's `event_id` index grows, and is pruned, at one end of the run.
    @Test func eventIDsSortInTheOrderTheyAreIssued() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let log = DecisionLog(store: t.stores.decisions, logger: Logger(label: "test"))
        let ids = (0..<5000).map { _ in log.nextEventID().id }
        #expect(ids.sorted() == ids)
        #expect(Set(ids.map(\.count)) == [25], "12 hex digits, a dash, 12 hex digits")
    }

    /// A decision reads back as it was written: greedy, without propensities, exploring, with no
    /// items, and with ids outside ASCII (bound by their UTF-8 length, not their character count).
    @Test func decisionsReadBackAsWritten() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        func record(_ id: String, _ items: [DecisionRecord.Shown]) -> DecisionRecord {
            DecisionRecord(eventId: id, model: "demo", version: 1, uid: "u1", policy: "p", time: 1_000,
                           items: items, candidates: id == "explored" ? ["i1", "i2", "i3", "i4"] : nil)
        }
        let records = [
            record("greedy", [.init(item: "i1", score: 3, propensity: 1), .init(item: "i2", score: 2, propensity: 1)]),
            record("none", [.init(item: "i1", score: 3, propensity: nil), .init(item: "i2", score: 2, propensity: nil)]),
            record("explored", [.init(item: "i3", score: 1, exploring: 4, propensity: 0.5, explored: true),
                                .init(item: "i1", score: 3, exploring: nil, propensity: 0.25)]),
            record("one", [.init(item: "i1", score: 3, exploring: 2, propensity: 0.9)]),
            record("certain", [.init(item: "i1", score: 3, exploring: 2, propensity: 1), .init(item: "i2", score: 1, exploring: 1, propensity: 1)]),
            record("empty", []),
            record("ünïcode-🙂", [.init(item: "é-1", score: 1, propensity: nil), .init(item: "🙂", score: 0.5, propensity: nil)]),
        ]
        try t.stores.decisions.appendDecisions(records)
        for r in records { #expect(try t.stores.decisions.decision(eventId: r.eventId) == r, "\(r.eventId)") }
    }
}

extension DecisionRetentionTests {
    /// While writes fail the buffer stays bounded: the oldest decisions are dropped and counted,
    /// and once the store recovers the newest are written.
    @Test func aFailingLogKeepsItsMemoryBounded() async throws {
        let t = try TrainedStore(), faults = Faults(), metrics = RecordedMetrics()
        let log = DecisionLog(store: t.stores.injectingFaults(faults).decisions,
                              logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                              retention: .forever, flushInterval: .seconds(3600), batchSize: 50, maxPending: 100,
                              metrics: EngineMetrics(factory: metrics.factory).decisionLog)
        faults.failAll(.decisionWrite)
        for d in decisions(2000, start: 1_000) {
            log.append(d)
            #expect(log.bufferedCount <= 2 * (100 + 100 / 8), "bounded while writes fail: the buffer and a failing batch")
        }
        await log.flushed()
        #expect(log.bufferedCount == 100 && metrics.count("osprey_decisions_dropped_total") == 1900)
        #expect(metrics.count("osprey_decision_log_write_failures_total") > 0 && metrics.gauge("osprey_decisions_pending") == 100)
        faults.heal(.decisionWrite)
        await log.flushed()
        #expect(try remaining(t.stores.decisions, of: 2000) == Array(1900..<2000), "the newest are kept and written")
        #expect(metrics.count("osprey_decisions_written_total") == 100 && log.bufferedCount == 0)
    }
}
