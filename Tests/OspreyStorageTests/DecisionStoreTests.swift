import Foundation
import GRDB
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// The decision log's store without a `(model, time)` index: each model's count is kept by the
/// appends, and a competition's decisions are found by a binary search over the rowids.
struct DecisionStoreTests {
    /// Decisions `from..<to`, ids `e<i>`, one second apart from 1,000 give or take `jitter(i)`,
    /// alternating between the models `a` (version `i % 3`) and `b` every `run` decisions.
    func decisions(_ range: Range<Int>, run: Int = 5, jitter: (Int) -> Double = { _ in 0 }) -> [DecisionRecord] {
        range.map { i in
            DecisionRecord(eventId: "e\(i)", model: (i / run) % 2 == 0 ? "a" : "b", version: i % 3, uid: "u\(i % 7)",
                           policy: "greedy", time: 1_000 + Double(i) + jitter(i),
                           items: [.init(item: "i1", score: 1, propensity: 1)], candidates: nil)
        }
    }

    @Test func countsAreKeptByAppendsAndOutlivePruning() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        #expect(try t.sqlite!.decisions.decisionCount(model: "a") == 0)
        let first = decisions(0..<42)
        try t.sqlite!.decisions.appendDecisions(first)
        // A repeated event id is ignored, and not counted.
        try t.sqlite!.decisions.appendDecisions(decisions(40..<50))
        let expected = { (m: String) in self.decisions(0..<50).filter { $0.model == m }.count }
        #expect(try t.sqlite!.decisions.decisionCount(model: "a") == expected("a"))
        #expect(try t.sqlite!.decisions.decisionCount(model: "b") == expected("b"))
        #expect(expected("a") + expected("b") == 50)
        // Pruning deletes decisions, not the count of those logged; appends that trim keep counting.
        #expect(try t.sqlite!.decisions.pruneDecisions(before: nil, keep: 10) == 40)
        try t.sqlite!.decisions.appendDecisions(decisions(50..<60), trimBefore: nil, trimKeep: 10)
        #expect(try t.sqlite!.decisions.decision(eventId: "e49") == nil)
        let reopened = try t.reopenSQLite()!
        #expect(try reopened.decisions.decisionCount(model: "a") == decisions(0..<60).filter { $0.model == "a" }.count)
        #expect(try reopened.decisions.decisionCount(model: "b") == decisions(0..<60).filter { $0.model == "b" }.count)
        #expect(try reopened.decisions.decisionCount(model: "c") == 0)
    }

    /// `decisionVersions` against a filter of every decision, for starts before, inside and after
    /// the log, with timestamps a little out of order, and after the oldest are pruned.
    @Test func aCompetitionsDecisionsAreFoundFromItsStart() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        // Every fourth decision carries a time up to 2.5 s earlier than the one before it.
        let all = decisions(0..<400, run: 3) { i in i % 4 == 0 ? -2.5 : 0 }
        for batch in stride(from: 0, to: all.count, by: 64) {
            try t.sqlite!.decisions.appendDecisions(Array(all[batch..<min(batch + 64, all.count)]))
        }
        func check(_ kept: ArraySlice<DecisionRecord>) throws {
            for since in [-1e9, 900, 1_000, 1_001.5, 1_037, 1_200, 1_250.25, 1_397, 1_399, 1_400, 2_000] {
                for model in ["a", "b", "c"] {
                    let want = Dictionary(uniqueKeysWithValues: kept.filter { $0.model == model && $0.time >= since }
                        .map { ($0.eventId, $0.version) })
                    #expect(try t.sqlite!.decisions.decisionVersions(model: model, since: since) == want, "\(model) since \(since)")
                }
            }
        }
        try check(all[...])
        #expect(try t.sqlite!.decisions.pruneDecisions(before: nil, keep: 150) == 250)
        try check(all[250...])
        #expect(try t.sqlite!.decisions.pruneDecisions(before: nil, keep: 0) == 150)
        try check(all[400...])
    }

    /// The binary search lands on the first decision at or after a time: on each rowid in turn.
    @Test func theFirstRowidAtATime() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        #expect(try t.sqlite!.decisions.database.pool.read { try SQLiteDecisionStore.firstDecisionRowid($0, atOrAfter: 0) } == 1)
        try t.sqlite!.decisions.appendDecisions(decisions(0..<37))
        #expect(try t.sqlite!.decisions.pruneDecisions(before: nil, keep: 30) == 7)  // rowids 8…37 left, times 1,007…1,036
        for (time, rowid) in [(0.0, 8), (1_007, 8), (1_007.5, 9), (1_020, 21), (1_036, 37), (1_036.1, 38), (5_000, 38)] as [(Double, Int64)] {
            #expect(try t.sqlite!.decisions.database.pool.read { try SQLiteDecisionStore.firstDecisionRowid($0, atOrAfter: time) } == rowid, "\(time)")
        }
    }

    /// A list holding only its default is stored empty; a row from before that, with every list
    /// at full length, reads back the same.
    @Test func defaultListsAreStoredEmptyAndFullOnesStillRead() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let greedy = DecisionRecord(eventId: "new", model: "a", version: 2, uid: "u1", policy: "greedy", time: 1_000,
                                    items: [.init(item: "i1", score: 3, propensity: 1), .init(item: "i2", score: 2, propensity: 1)],
                                    candidates: nil)
        try t.sqlite!.decisions.appendDecisions([greedy])
        let lengths = try t.sqlite!.decisions.database.pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT length(items), length(scores), length(exploring), length(propensities), length(explored) FROM decision
                """)
        }
        #expect(lengths.map { r in (0..<5).map { r[$0] as Int } } == [5, 8, 0, 0, 0])
        try t.sqlite!.decisions.database.pool.write { db in
            let nan = Float.nan, one = 1.0
            try db.execute(sql: """
                INSERT INTO decision (event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored)
                VALUES ('old', 'a', 2, 'u1', 'greedy', 1000, ?, ?, ?, ?, ?)
                """, arguments: [Data("i1\u{0}i2".utf8), Data(bytes: [Float(3), 2], count: 8), Data(bytes: [nan, nan], count: 8),
                                 Data(bytes: [one, one], count: 16), Data([0, 0])])
        }
        var old = greedy
        old.eventId = "old"
        #expect(try t.sqlite!.decisions.decision(eventId: "old") == old)
        #expect(try t.sqlite!.decisions.decision(eventId: "new") == greedy)
    }

    /// A decision database from before the count table (with the `(model, time)` index) gets
    /// each model's count from its rows, and loses the index.
    @Test func theMigrationCountsWhatIsThereAndDropsTheIndex() throws {
        let directory = NSTemporaryDirectory() + "osprey-decision-migration-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let old = try DatabaseQueue(path: (directory as NSString).appendingPathComponent(SQLiteDecisionStore.fileName))
            try SQLiteDecisionStore.migrator.migrate(old, upTo: "v2-assignment")
            try old.write { db in
                for (i, model) in ["a", "b", "a", "a", "c"].enumerated() {
                    try db.execute(sql: """
                        INSERT INTO decision (event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored)
                        VALUES (?, ?, 1, 'u', 'greedy', ?, x'', x'', x'', x'', x'')
                        """, arguments: ["e\(i)", model, 1_000 + i])
                }
            }
            #expect(try old.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decision'") }
                .contains("decision_model_time"))
        }
        let store = try SQLiteStores(directory: directory)
        #expect(try store.decisions.decisionCount(model: "a") == 3)
        #expect(try store.decisions.decisionCount(model: "b") == 1)
        #expect(try store.decisions.decisionCount(model: "c") == 1)
        #expect(try store.decisions.database.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'decision'") }
            .allSatisfy { $0.hasPrefix("sqlite_autoindex") })
        #expect(try store.decisions.decisionVersions(model: "a", since: 1_002) == ["e2": 1, "e3": 1])
    }
}
