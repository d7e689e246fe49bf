import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// What the contract tests leave out for ``PostgresSnapshotStore``: chunked first snapshots at a
/// real dimension, the compact and point reads, hot users and observed items per version and
/// model, corrupt rows, the sequence that only rises, and answers alike to SQLite's.
@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "needs PostgreSQL's server (scripts/install-test-tools.sh)"))
struct PostgresSnapshotStoreTests {
    /// A store on a fresh database.
    static func freshStore() throws -> PostgresSnapshotStore {
        try PostgresSnapshotStore(database: try PostgresDatabase(url: try PostgresTestServer.freshDatabase()))
    }

    /// A user's weights at dimension `d`, distinct per `n`.
    static func weights(_ n: Int, dimension d: Int) -> UserWeights {
        var ridge = RidgeState(prior: (0..<d).map { Float($0) / 100 }, lambda: 0.5)
        for k in 0..<(1 + n % 3) {
            // `update` reads a padded stride of features: zeros past `d`.
            var features = [Float](repeating: 0, count: VectorKernels.paddedStride(d))
            for j in 0..<d { features[j] = Float((j * 7 + n + k) % 13) / 5 - 1 }
            _ = ridge.update(features: features, target: Float(n % 5))
        }
        return UserWeights(ridge: ridge, observations: n % 17, runningLoss: n % 4 == 0 ? nil : Double(n) / 3,
                           bootstrapped: n % 2 == 0)
    }

    static func row(_ n: Int, dimension: Int = 50, seq: Int64 = 100) -> SnapshotRow {
        SnapshotRow(uid: "user-\(n)", weights: weights(n, dimension: dimension), seq: seq)
    }

    /// The bytes a written state reads back as: itself, or packed when it was written unpacked
    /// ("RDG2"), as every snapshot store answers.
    static func readBack(_ state: [UInt8]) throws -> [UInt8] {
        try RidgeState(serialized: state).serialized()
    }

    /// A first snapshot of 3,000 users at d = 50 in three chunks (each one statement) reads back
    /// bit for bit through every read: the full snapshot, the compact rows, the point reads.
    @Test func aChunkedFirstSnapshotRoundTripsExactly() throws {
        let store = try Self.freshStore()
        let rows = (0..<3_000).map { Self.row($0, seq: 100 + Int64($0 % 3)) }
        try store.replaceUsers(model: "m", version: 1, reflecting: 100) { write in
            for start in stride(from: 0, to: rows.count, by: 1_000) { try write(Array(rows[start..<start + 1_000])) }
        }
        #expect(try store.userCount(model: "m", version: 1) == 3_000 && store.snapshotSequence(model: "m", version: 1) == 100)
        let snapshot = try store.loadSnapshot(model: "m", version: 1, dimension: 50)
        #expect(snapshot.seq == 100 && snapshot.users.count == 3_000)
        #expect(snapshot.ahead == Dictionary(uniqueKeysWithValues: rows.filter { $0.seq > 100 }.map { ($0.uid, $0.seq) }))
        var mismatched: [String] = []
        for r in rows {
            let w = try #require(snapshot.users[r.uid])
            if try w.ridge.serialized() != Self.readBack(r.state) || w.observations != r.observations || w.runningLoss != r.runningLoss
                || w.bootstrapped != r.bootstrapped { mismatched.append(r.uid) }
        }
        #expect(mismatched.count == 0, "full states differ, first \(mismatched.prefix(5))")
        var compact: [String: StoredWeights] = [:]
        try store.forEachStoredWeights(model: "m", version: 1, dimension: 50) { compact[$0.uid] = $0 }
        #expect(compact.count == 3_000)
        let differing = rows.filter { r in
            let c = compact[r.uid]
            return !(c?.weights == r.weights && c?.observations == r.observations && c?.runningLoss == r.runningLoss
                     && c?.bootstrapped == r.bootstrapped && c?.seq == r.seq)
        }
        #expect(differing.count == 0, "compact rows differ, first \(differing.prefix(2).map { ($0.uid, $0.weights.prefix(3), $0.observations, $0.runningLoss as Any, $0.bootstrapped, $0.seq) }) read as \(differing.prefix(2).map { compact[$0.uid].map { ($0.weights.prefix(3), $0.observations, $0.runningLoss as Any, $0.bootstrapped, $0.seq) } as Any })")
        for n in [0, 1, 999, 1_000, 2_999] {
            let (w, seq) = try #require(try store.loadUserState(model: "m", version: 1, uid: "user-\(n)", dimension: 50))
            let expected = try Self.readBack(rows[n].state)
            #expect(w.ridge.serialized() == expected && seq == rows[n].seq && w.runningLoss == rows[n].runningLoss)
        }
        #expect(try store.loadUserState(model: "m", version: 2, uid: "user-0", dimension: 50) == nil, "per version")
        #expect(try store.userCount(model: "other", version: 1) == 0, "per model")
    }

    /// A user named twice in one write is written once, as its last row; with `keepingPrevious`
    /// its kept copy is what it held before the write.
    @Test func aUserNamedTwiceInOneWriteKeepsItsLastRow() throws {
        let store = try Self.freshStore()
        try store.replaceUsers(model: "m", version: 1, reflecting: 1) { write in try write([Self.row(1, dimension: 3, seq: 1)]) }
        let a = SnapshotRow(uid: "user-1", weights: Self.weights(7, dimension: 3), seq: 2)
        let b = SnapshotRow(uid: "user-1", weights: Self.weights(8, dimension: 3), seq: 3)
        try store.saveSnapshot(model: "m", version: 1, rows: [a, b], observedItems: [], keepingPrevious: true)
        let last = try Self.readBack(b.state), before = try Self.readBack(Self.row(1, dimension: 3).state)
        #expect(try store.loadUserState(model: "m", version: 1, uid: "user-1", dimension: 3)?.weights.ridge.serialized() == last)
        #expect(try store.restoreInterruptedSnapshot(model: "m", version: 1) == 1)
        let restored = try #require(try store.loadUserState(model: "m", version: 1, uid: "user-1", dimension: 3))
        #expect(restored.seq == 1 && restored.weights.ridge.serialized() == before)
    }

    /// Hot users are recorded per version, each save replacing that version's record only;
    /// repeats are stored once; an empty save clears the record.
    @Test func hotUsersAreReplacedPerVersion() throws {
        let store = try Self.freshStore()
        #expect(try store.hotUsers(model: "m", version: 1).isEmpty)
        try store.saveHotUsers(model: "m", version: 1, ["c", "a", "b", "a"])
        try store.saveHotUsers(model: "m", version: 2, ["z"])
        try store.saveHotUsers(model: "n", version: 1, ["y"])
        #expect(try store.hotUsers(model: "m", version: 1) == ["a", "b", "c"])
        try store.saveHotUsers(model: "m", version: 1, ["d"])
        #expect(try store.hotUsers(model: "m", version: 1) == ["d"] && store.hotUsers(model: "m", version: 2) == ["z"])
        #expect(try store.hotUsers(model: "n", version: 1) == ["y"])
        try store.saveHotUsers(model: "m", version: 1, [])
        #expect(try store.hotUsers(model: "m", version: 1).isEmpty && store.hotUsers(model: "m", version: 2) == ["z"])
    }

    /// Observed items are recorded per model and user, without repeats (in one call or across
    /// calls, through either write), in item order.
    @Test func observedItemsIgnoreRepeats() throws {
        let store = try Self.freshStore()
        let items = ["i3", "i1", "i3", "i2"].map { ObservedItem(uid: "u", item: $0) }
        try store.saveObservedItems(model: "m", items)
        try store.saveObservedItems(model: "m", [ObservedItem(uid: "u", item: "i1"), ObservedItem(uid: "v", item: "i9")])
        try store.saveSnapshot(model: "m", version: 1, rows: [], observedItems: [ObservedItem(uid: "u", item: "i2"),
                                                                               ObservedItem(uid: "u", item: "i4")])
        try store.saveObservedItems(model: "other", [ObservedItem(uid: "u", item: "x")])
        #expect(try store.observedItems(model: "m", uid: "u") == ["i1", "i2", "i3", "i4"])
        #expect(try store.observedItems(model: "m", uid: "v") == ["i9"] && store.observedItems(model: "other", uid: "u") == ["x"])
        #expect(try store.observedItems(model: "m", uid: "nobody").isEmpty)
    }

    /// A row of another dimension, or one whose blob does not decode, is `.corrupt` naming its
    /// table, model, version and user, through every read of it.
    @Test func aCorruptRowIsNamed() throws {
        let store = try Self.freshStore()
        try store.replaceUsers(model: "m", version: 4, reflecting: 1) { write in
            try write([Self.row(1, dimension: 3, seq: 1), Self.row(2, dimension: 2, seq: 1)])
        }
        func expectCorrupt(_ naming: String, _ problem: String, _ read: () throws -> Void) {
            let error = #expect(throws: StorageError.self) { try read() }
            #expect(error?.code == .corrupt)
            #expect(error?.message.contains(naming) == true && error?.message.contains(problem) == true, "\(error?.message ?? "")")
        }
        let named = "(model m, version 4, uid user-2)"
        expectCorrupt("user_ridge " + named, "dimension 2") { _ = try store.loadSnapshot(model: "m", version: 4, dimension: 3) }
        expectCorrupt("user_ridge " + named, "dimension 2") { _ = try store.loadUserState(model: "m", version: 4, uid: "user-2", dimension: 3) }
        expectCorrupt("user_weights " + named, "8 bytes") { try store.forEachStoredWeights(model: "m", version: 4, dimension: 3) { _ in } }
        #expect(try store.loadUserState(model: "m", version: 4, uid: "user-1", dimension: 3) != nil, "the other row reads")
        try store.database.transaction { s in
            try s.execute("UPDATE user_ridge SET state = '\\x0102'::bytea WHERE uid = 'user-1'")
        }
        expectCorrupt("user_ridge (model m, version 4, uid user-1)", "unreadable") {
            _ = try store.loadUserState(model: "m", version: 4, uid: "user-1", dimension: 3)
        }
    }

    /// The snapshot sequence rises and never lowers; advancing a version without one creates
    /// none; a new first snapshot of the version sets it afresh.
    @Test func theSnapshotSequenceNeverLowers() throws {
        let store = try Self.freshStore()
        try store.advanceSnapshot(model: "m", version: 1, to: 50)
        #expect(throws: StorageError.self) { try store.snapshotSequence(model: "m", version: 1) }
        try store.replaceUsers(model: "m", version: 1, reflecting: 10) { write in try write([Self.row(1, dimension: 3, seq: 10)]) }
        #expect(try store.snapshotSequence(model: "m", version: 1) == 10)
        for (to, expected) in [(Int64(12), Int64(12)), (11, 12), (12, 12), (0, 12), (30, 30)] {
            try store.advanceSnapshot(model: "m", version: 1, to: to)
            #expect(try store.snapshotSequence(model: "m", version: 1) == expected, "advanced to \(to)")
        }
        #expect(try store.loadSnapshot(model: "m", version: 1, dimension: 3).seq == 30)
        try store.replaceUsers(model: "m", version: 1, reflecting: 5) { write in try write([Self.row(2, dimension: 3, seq: 5)]) }
        #expect(try store.snapshotSequence(model: "m", version: 1) == 5, "a new first snapshot replaces the version")
        let error = #expect(throws: StorageError.self) { try store.snapshotSequence(model: "m", version: 2) }
        #expect(error?.code == .notFound)
    }

    /// The same writes, kept snapshots, restores and erasures on this store and on SQLite's
    /// leave the same rows, bit for bit, and return the same counts.
    @Test func answersAsSQLiteDoes() throws {
        let directory = NSTemporaryDirectory() + "osprey-pg-twin-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sqlite = try SQLiteStores(directory: directory, access: .unlocked).stores.snapshots
        let postgres = try Self.freshStore()
        func item(_ name: String, _ n: Int, seq: Int64) -> ItemStateRow {
            ItemStateRow(item: name, ridge: Self.weights(n, dimension: 3).ridge, observations: n, seq: seq)
        }
        var answers: [String: [String]] = [:]
        for (name, store) in [("sqlite", sqlite as any SnapshotStore), ("postgres", postgres)] {
            var lines: [String] = []
            try store.replaceUsers(model: "m", version: 1, reflecting: 5) { write in
                try write((0..<6).map { Self.row($0, dimension: 3, seq: 5) })
                try store.saveItemStates(model: "m", version: 1, rows: [item("é", 1, seq: 5), item("Z", 2, seq: 5), item("a", 3, seq: 5)],
                                         keepingPrevious: false)
            }
            try store.saveSnapshot(model: "m", version: 1, rows: [Self.row(10, dimension: 3, seq: 8), Self.row(0, dimension: 3, seq: 8)]
                                    .map { var r = $0; r.uid = r.uid == "user-10" ? "user-1" : "user-9"; return r },
                                   observedItems: [ObservedItem(uid: "user-1", item: "Z")], keepingPrevious: true)
            try store.saveItemStates(model: "m", version: 1, rows: [item("a", 9, seq: 8), item("new", 4, seq: 8)], keepingPrevious: true)
            lines += try Self.contents(store, version: 1).map { "during " + $0 }
            lines.append("restored \(try store.restoreInterruptedSnapshot(model: "m", version: 1))")
            lines += try Self.contents(store, version: 1).map { "after " + $0 }
            try store.saveSnapshot(model: "m", version: 1, rows: [Self.row(20, dimension: 3, seq: 9)], observedItems: [], keepingPrevious: true)
            lines.append("erased \(try store.deleteUser(model: "m", uid: "user-1")) \(try store.deleteUser(model: "m", uid: "user-20"))")
            try store.advanceSnapshot(model: "m", version: 1, to: 9)
            lines.append("restored \(try store.restoreInterruptedSnapshot(model: "m", version: 1))")
            lines += try Self.contents(store, version: 1).map { "end " + $0 }
            lines.append("sequence \(try store.snapshotSequence(model: "m", version: 1)) users \(try store.userCount(model: "m", version: 1))")
            answers[name] = lines
        }
        #expect(answers["postgres"]! == answers["sqlite"]!)
        #expect(answers["postgres"]!.contains { $0.hasPrefix("end item") }, "the comparison saw rows")
    }

    /// Every row of a version, one line each, in a fixed order (items in the store's order).
    static func contents(_ store: any SnapshotStore, version: Int) throws -> [String] {
        var lines: [String] = []
        let full = try store.loadSnapshot(model: "m", version: version, dimension: 3)
        lines.append("snapshot \(full.seq) ahead \(full.ahead.sorted { $0.key < $1.key })")
        for uid in full.users.keys.sorted() {
            let (w, seq) = try #require(try store.loadUserState(model: "m", version: version, uid: uid, dimension: 3))
            lines.append("user \(uid) \(w.ridge.serialized()) \(w.observations) \(String(describing: w.runningLoss)) \(w.bootstrapped) \(seq)")
        }
        var compact: [String] = []
        try store.forEachStoredWeights(model: "m", version: version, dimension: 3) { r in
            compact.append("compact \(r.uid) \(r.weights) \(r.observations) \(String(describing: r.runningLoss)) \(r.bootstrapped) \(r.seq)")
        }
        lines += compact.sorted()
        lines += try store.loadItemStates(model: "m", version: version, dimension: 3).map {
            "item \($0.item) \($0.ridge.serialized()) \($0.observations) \($0.seq)"
        }
        lines.append("observed \(try store.observedItems(model: "m", uid: "user-1"))")
        return lines
    }
}
