import Foundation
import OspreyTestSupport
import PostgresNIO
import Synchronization
import Testing
@testable import OspreyStorage

/// The PostgreSQL decision log, checked as ``DecisionStoreTests`` checks the SQLite one: counts
/// kept by the appends and outliving pruning, trimming, the log's order, a competition's
/// decisions found by a binary search over `seq`, allocations and a user's erasure.
@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "needs PostgreSQL's server"))
struct PostgresDecisionStoreTests {
    /// A store on a fresh database, and a way to open it again (a new pool on the same database).
    func withStore(_ body: (PostgresDecisionStore, _ reopen: () throws -> PostgresDecisionStore) throws -> Void) throws {
        let url = try PostgresTestServer.freshDatabase()
        var opened: [OspreyStorage.PostgresDatabase] = []
        defer { opened.forEach { $0.shutdown() } }
        func open() throws -> PostgresDecisionStore {
            let database = try OspreyStorage.PostgresDatabase(url: url)
            opened.append(database)
            return try PostgresDecisionStore(database: database)
        }
        try body(try open(), open)
    }

    /// Decisions `from..<to`, ids `e<i>`, one second apart from 1,000 give or take `jitter(i)`,
    /// alternating between the models `a` (version `i % 3`) and `b` every `run` decisions.
    func decisions(_ range: Range<Int>, run: Int = 5, jitter: (Int) -> Double = { _ in 0 }) -> [DecisionRecord] {
        range.map { i in
            DecisionRecord(eventId: "e\(i)", model: (i / run) % 2 == 0 ? "a" : "b", version: i % 3, uid: "u\(i % 7)",
                           policy: "greedy", time: 1_000 + Double(i) + jitter(i),
                           items: [.init(item: "i1", score: 1, propensity: 1)], candidates: nil)
        }
    }

    /// Every `seq` in the log, in order.
    func seqs(_ store: PostgresDecisionStore) throws -> [Int64] {
        try store.database.withConnection { s in
            try s.query("SELECT seq FROM decision ORDER BY seq").map { try $0.decode(Int64.self) }
        }
    }

    @Test func countsAreKeptByAppendsAndOutlivePruning() throws {
        try withStore { store, reopen in
            #expect(try store.decisionCount(model: "a") == 0)
            try store.appendDecisions(decisions(0..<42))
            // A repeated event id is ignored, and not counted.
            try store.appendDecisions(decisions(40..<50))
            let expected = { (m: String) in self.decisions(0..<50).filter { $0.model == m }.count }
            #expect(try store.decisionCount(model: "a") == expected("a"))
            #expect(try store.decisionCount(model: "b") == expected("b"))
            #expect(expected("a") + expected("b") == 50)
            #expect(try seqs(store) == Array(1...50), "repeated ids take no number")
            // Pruning deletes decisions, not the count of those logged; appends that trim keep counting.
            #expect(try store.pruneDecisions(before: nil, keep: 10) == 40)
            try store.appendDecisions(decisions(50..<60), trimBefore: nil, trimKeep: 10)
            #expect(try store.decision(eventId: "e49") == nil)
            let reopened = try reopen()
            #expect(try reopened.decisionCount(model: "a") == decisions(0..<60).filter { $0.model == "a" }.count)
            #expect(try reopened.decisionCount(model: "b") == decisions(0..<60).filter { $0.model == "b" }.count)
            #expect(try reopened.decisionCount(model: "c") == 0)
        }
    }

    /// The first of two decisions with one event id in a batch stands; the log keeps the
    /// batches' order, and a model's latest decisions come oldest first.
    @Test func theLogKeepsTheAppendOrder() throws {
        try withStore { store, _ in
            var batch = decisions(0..<6)
            var repeated = batch[2]
            repeated.version = 99
            batch.insert(repeated, at: 4)
            try store.appendDecisions(batch)
            try store.appendDecisions(decisions(6..<12).reversed())
            #expect(try store.decision(eventId: "e2")?.version == 2, "the first stands")
            #expect(try store.decisionCount(model: "a") == 5 + 2, "the repeat not counted")
            #expect(try store.decisions(model: "a", limit: 10).map(\.eventId) == ["e0", "e1", "e2", "e3", "e4", "e11", "e10"])
            #expect(try store.decisions(model: "b", limit: 3).map(\.eventId) == ["e8", "e7", "e6"])
            #expect(try store.decisions(model: "c", limit: 3).isEmpty)
        }
    }

    /// An append that trims deletes up to twice as many as it appended, oldest first, by time
    /// and by count, in its own transaction.
    @Test func appendsTrimUpToTwiceWhatTheyAppend() throws {
        try withStore { store, _ throws in
            #expect(try store.appendDecisions(decisions(0..<20)) == 0)
            #expect(try store.appendDecisions(decisions(20..<22), trimBefore: nil, trimKeep: 5) == 4)
            #expect(try store.decision(eventId: "e3") == nil && store.decision(eventId: "e4") != nil)
            // A repeated decision appends nothing, but counts as appended for the trim's allowance.
            #expect(try store.appendDecisions(decisions(21..<22), trimBefore: nil, trimKeep: 5) == 2)
            #expect(try store.appendDecisions(decisions(22..<25), trimBefore: 1_015, trimKeep: nil) == 6)  // e6…e11
            #expect(try store.appendDecisions(decisions(25..<30), trimBefore: 1_015, trimKeep: nil) == 3)  // e12…e14
            #expect(try store.appendDecisions(decisions(30..<31), trimBefore: 1_015, trimKeep: 100) == 0)
            #expect(try store.appendDecisions(decisions(31..<32), trimBefore: 1_018, trimKeep: 14) == 2)  // e15, e16
            #expect(try store.decisions(model: "a", limit: 100).map(\.eventId).first == "e20")
            #expect(try store.decisions(model: "b", limit: 100).map(\.eventId).first == "e17")
            #expect(try store.pruneDecisions(before: 1_020, keep: 100, batch: 1, maxBatches: 100) == 3)
            #expect(try store.pruneDecisions(before: nil, keep: 3, batch: 2, maxBatches: 3) == 6, "three batches")
            #expect(try seqs(store) == Array(27...32))
        }
    }

    /// `decisionVersions` against a filter of every decision, for starts before, inside and after
    /// the log, with timestamps a little out of order, and after the oldest are pruned.
    @Test func aCompetitionsDecisionsAreFoundFromItsStart() throws {
        try withStore { store, _ in
            // Every fourth decision carries a time up to 2.5 s earlier than the one before it.
            let all = decisions(0..<400, run: 3) { i in i % 4 == 0 ? -2.5 : 0 }
            for batch in stride(from: 0, to: all.count, by: 64) {
                try store.appendDecisions(Array(all[batch..<min(batch + 64, all.count)]))
            }
            func check(_ kept: ArraySlice<DecisionRecord>) throws {
                for since in [-1e9, 900, 1_000, 1_001.5, 1_037, 1_200, 1_250.25, 1_397, 1_399, 1_400, 2_000] {
                    for model in ["a", "b", "c"] {
                        let want = Dictionary(uniqueKeysWithValues: kept.filter { $0.model == model && $0.time >= since }
                            .map { ($0.eventId, $0.version) })
                        #expect(try store.decisionVersions(model: model, since: since) == want, "\(model) since \(since)")
                    }
                }
            }
            try check(all[...])
            #expect(try store.pruneDecisions(before: nil, keep: 150) == 250)
            try check(all[250...])
            #expect(try store.pruneDecisions(before: nil, keep: 0) == 150)
            try check(all[400...])
        }
    }

    /// The binary search lands on the first decision at or after a time: on each `seq` in turn,
    /// and on the next one across an erasure's gap.
    @Test func theFirstSeqAtATime() throws {
        try withStore { store, _ in
            func first(_ time: Double) throws -> Int64 {
                try store.database.withConnection { try PostgresDecisionStore.firstDecisionSeq($0, atOrAfter: time) }
            }
            #expect(try first(0) == 1)
            try store.appendDecisions(decisions(0..<37))
            #expect(try store.pruneDecisions(before: nil, keep: 30) == 7)  // seqs 8…37 left, times 1,007…1,036
            for (time, seq) in [(0.0, 8), (1_007, 8), (1_007.5, 9), (1_020, 21), (1_036, 37), (1_036.1, 38), (5_000, 38)] as [(Double, Int64)] {
                #expect(try first(time) == seq, "\(time)")
            }
            #expect(try store.deleteUser(model: "b", uid: "u1") == 4)  // e8, e15, e29, e36: seqs 9, 16, 30, 37
            // The next row stands in for a missing one: seq 17 (e16, at 1,016) for 16.
            for (time, seq) in [(1_014.5, 16), (1_016, 16), (1_016.5, 18), (1_036, 37), (1_036.5, 37)] as [(Double, Int64)] {
                #expect(try first(time) == seq, "\(time) after the erasure")
            }
        }
    }

    /// A list holding only its default is stored empty, and every list reads back, full ones too
    /// (as the SQLite store wrote before emptying defaults).
    @Test func listsReadBackAndDefaultOnesAreStoredEmpty() throws {
        try withStore { store, _ in
            let greedy = DecisionRecord(eventId: "greedy", model: "a", version: 2, uid: "u1", policy: "greedy", time: 1_000,
                                        items: [.init(item: "i1", score: 3, propensity: 1), .init(item: "i2", score: 2, propensity: 1)],
                                        candidates: nil)
            let exploring = DecisionRecord(
                eventId: "exploring", model: "a", version: 3, uid: "u2", policy: "linucb(1.0)", time: 1_001,
                items: [.init(item: "i3", score: 1.5, exploring: 2.5, propensity: 0.25, explored: true),
                        .init(item: "", score: -1, exploring: nil, propensity: nil)],
                candidates: ["i3", "", "i4"])
            let none = DecisionRecord(eventId: "none", model: "a", version: 3, uid: "u2", policy: "greedy", time: 1_002,
                                      items: [], candidates: [])
            try store.appendDecisions([greedy, exploring, none])
            let lengths = try store.database.withConnection { s in
                try s.query("""
                    SELECT octet_length(items), octet_length(scores), octet_length(exploring), octet_length(propensities),
                           octet_length(explored), candidates IS NULL FROM decision WHERE event_id = 'greedy'
                    """).first!.decode((Int, Int, Int, Int, Int, Bool).self)
            }
            #expect(lengths == (5, 8, 0, 0, 0, true))
            try store.database.withConnection { s in
                let nan = Float.nan, one = 1.0
                let lists = [Data("i1\u{0}i2".utf8), Data(bytes: [Float(3), 2], count: 8), Data(bytes: [nan, nan], count: 8),
                             Data(bytes: [one, one], count: 16), Data([0, 0])]
                try s.execute("""
                    INSERT INTO decision (seq, event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored)
                    VALUES (4, 'old', 'a', 2, 'u1', 'greedy', 1000, \(lists[0]), \(lists[1]), \(lists[2]), \(lists[3]), \(lists[4]))
                    """)
            }
            var old = greedy
            old.eventId = "old"
            #expect(try store.decision(eventId: "old") == old)
            #expect(try store.decision(eventId: "greedy") == greedy)
            #expect(try store.decision(eventId: "exploring") == exploring)
            #expect(try store.decision(eventId: "none") == none)
            #expect(try store.decision(eventId: "missing") == nil)
            #expect(try store.decisions(model: "a", limit: 10) == [greedy, exploring, none, old])
        }
    }

    /// The first allocation stands; a user's erasure takes its decisions and allocations of that
    /// model only, leaves the count, and the log still finds a competition's decisions across
    /// the gaps.
    @Test func assignmentsAndErasure() throws {
        try withStore { store, reopen in
            try store.appendDecisions(decisions(0..<20))
            try store.appendAssignments([Assignment(model: "a", since: 5, uid: "u1", version: 2),
                                         Assignment(model: "a", since: 5, uid: "u1", version: 3),
                                         Assignment(model: "a", since: 5, uid: "u2", version: 1),
                                         Assignment(model: "b", since: 5, uid: "u1", version: 1),
                                         Assignment(model: "a", since: 6, uid: "u1", version: 1)])
            try store.appendAssignments([Assignment(model: "a", since: 5, uid: "u2", version: 3)])
            #expect(try store.assignments(model: "a", since: 5) == ["u1": 2, "u2": 1])
            #expect(try store.assignments(model: "a", since: 7) == [:])
            let erased = decisions(0..<20).filter { $0.model == "a" && $0.uid == "u1" }
            #expect(!erased.isEmpty)
            #expect(try store.deleteUser(model: "a", uid: "u1") == erased.count + 2)
            #expect(try store.deleteUser(model: "a", uid: "u1") == 0, "idempotent")
            let d = try reopen()
            #expect(try d.assignments(model: "a", since: 5) == ["u2": 1])
            #expect(try d.assignments(model: "b", since: 5) == ["u1": 1])
            #expect(try d.decisionCount(model: "a") == 10)
            #expect(try d.decisions(model: "a", limit: 100).map(\.eventId)
                == decisions(0..<20).filter { $0.model == "a" && $0.uid != "u1" }.map(\.eventId))
            #expect(try d.decisionVersions(model: "a", since: 1_001) == Dictionary(uniqueKeysWithValues: decisions(0..<20)
                .filter { $0.model == "a" && $0.uid != "u1" && $0.time >= 1_001 }.map { ($0.eventId, $0.version) }))
            #expect(try d.decisions(model: "b", limit: 100).count == 10, "another model's decisions stay")
        }
    }

    /// Appenders on several connections take turns: `seq` has no gaps, follows each append's
    /// order, and every model's count adds up.
    @Test func concurrentAppendsKeepTheOrderAndTheCounts() throws {
        try withStore { store, _ in
            let failures = Mutex(0), done = DispatchGroup()
            for worker in 0..<8 {
                done.enter()
                Thread {
                    defer { done.leave() }
                    for round in 0..<10 {
                        let base = (worker * 10 + round) * 10
                        // A third of each batch (after the first) repeats ids of the worker's previous one.
                        let batch = decisions(base..<(base + 10)) + (round > 0 ? decisions((base - 10)..<(base - 5)) : [])
                        do {
                            try store.appendDecisions(batch, trimBefore: nil, trimKeep: 10_000)
                        } catch {
                            failures.withLock { $0 += 1 }
                        }
                    }
                }.start()
            }
            done.wait()
            #expect(failures.withLock { $0 } == 0)
            #expect(try seqs(store) == Array(1...800))
            #expect(try store.decisionCount(model: "a") == 400 && store.decisionCount(model: "b") == 400)
            let order = try store.database.withConnection { s in
                try s.query("SELECT event_id FROM decision ORDER BY seq").map { try $0.decode(String.self) }
            }
            let position = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
            for start in stride(from: 0, to: 800, by: 10) {
                #expect((start..<(start + 9)).allSatisfy { i in
                    position["e\(i)"].map { $0 + 1 } == position["e\(i + 1)"] && position["e\(i)"] != nil
                }, "e\(start)…")
            }
        }
    }
}
