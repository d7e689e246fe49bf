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

    func remaining(_ store: SQLiteStore, of count: Int) throws -> [Int] {
        try (0..<count).filter { try store.decision(eventId: "e\($0)") != nil }
    }

    @Test func theStoreDeletesByAgeAndByCountOldestFirst() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        try t.store.appendDecisions(decisions(95, start: 1_000))
        // By age, in batches smaller than what goes: e0…e29 are older than 1,030.
        #expect(try t.store.pruneDecisions(before: 1_030, keep: nil, batch: 7) == 30)
        #expect(try remaining(t.store, of: 95) == Array(30..<95))
        // Nothing more to delete by age.
        #expect(try t.store.pruneDecisions(before: 1_030, keep: nil, batch: 7) == 0)
        // By count: keep the newest 40.
        #expect(try t.store.pruneDecisions(before: nil, keep: 40, batch: 8) == 25)
        #expect(try remaining(t.store, of: 95) == Array(55..<95))
        // Both at once: the stricter one wins (age deletes through e69).
        #expect(try t.store.pruneDecisions(before: 1_070, keep: 30, batch: 1_000) == 15)
        #expect(try remaining(t.store, of: 95) == Array(70..<95))
        // New decisions after pruning are still appended and counted right.
        try t.store.appendDecisions(decisions(100, start: 2_000).suffix(5))
        #expect(try t.store.pruneDecisions(before: nil, keep: 10, batch: 3) == 20)
        #expect(try remaining(t.store, of: 100) == Array(90..<100))
        #expect(try t.store.pruneDecisions(before: nil, keep: 0, batch: 4) == 10)
        #expect(try remaining(t.store, of: 100).isEmpty)
        #expect(try t.store.pruneDecisions(before: 1e12, keep: 0) == 0)
    }

    @Test func theServersLogAppliesItsRetention() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(
            store: try t.reopen(),
            configuration: .init(exploration: .init(decisionRetention: .init(maxAge: .seconds(3600), maxCount: 50))),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let now = Date()
        // 60 decisions an hour and a half old, then 60 from the last minute.
        for d in decisions(60, start: now.timeIntervalSince1970 - 5_400) + decisions(120, start: now.timeIntervalSince1970 - 60).suffix(60) {
            manager.decisions.append(d)
        }
        await manager.decisions.flushed()
        // The old 60 go by age, then 10 of the recent ones by count.
        #expect(manager.decisions.prune(now: now) == 70)
        #expect(manager.decisionsPrunedCount == 70)
        #expect(try remaining(t.reopen(), of: 120) == Array(70..<120))
        #expect(manager.decisions.prune(now: now) == 0)
        // Kept forever: nothing is deleted.
        let keepAll = try Manager(
            store: try t.reopen(), configuration: .init(exploration: .init(decisionRetention: .forever)),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        #expect(keepAll.decisions.prune(now: now.addingTimeInterval(1e9)) == 0)
    }
}
