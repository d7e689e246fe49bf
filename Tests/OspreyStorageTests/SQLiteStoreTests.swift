import Foundation
import GRDB
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyStorage

struct SQLiteStoreTests {
    @Test func durableSettings() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        #expect(try t.sqlite!.log.database.synchronousMode() == 2)
        #expect(try t.sqlite!.log.database.journalMode() == "wal")
        #expect(try t.sqlite!.snapshots.database.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") } == 2)
        // Reopening keeps FULL on the new writer too.
        #expect(try t.reopenSQLite()!.log.database.synchronousMode() == 2)
        // The snapshot file checkpoints in small steps; the log keeps SQLite's default.
        func checkpointPages(_ db: SQLiteDatabase) throws -> Int? {
            try db.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA wal_autocheckpoint") }
        }
        #expect(try checkpointPages(t.sqlite!.snapshots.database) == SQLiteSnapshotStore.checkpointPages)
        #expect(try checkpointPages(t.reopenSQLite()!.snapshots.database) == 16)
        #expect(try checkpointPages(t.sqlite!.log.database) == 1000)
    }

    /// What the stores delete is overwritten with zeros: an erased user's full state (its
    /// overflow pages) is in no page of `snapshots.sqlite` once checkpointed, also right after
    /// a version's deletion, which alone leaves its freed pages as they were.
    @Test func anErasedUsersStateIsOverwritten() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let snapshots = t.sqlite!.snapshots, uid = "erased-user"
        var ridge = RidgeState(prior: [Float](repeating: 0, count: 50), lambda: 1)
        _ = ridge.update(features: (0..<ridge.stride).map { $0 < 50 ? 0.123 + Float($0) / 7 : 0 }, target: 4)
        try snapshots.saveSnapshot(model: "demo", version: 1, rows: [SnapshotRow(
            uid: uid, weights: UserWeights(ridge: ridge, observations: 1, runningLoss: 0, bootstrapped: false), seq: 1)],
            observedItems: [], keepingPrevious: false)
        let blob = try snapshots.database.pool.read {
            try Data.fetchOne($0, sql: "SELECT state FROM user_ridge WHERE uid = ?", arguments: [uid])!
        }
        #expect(blob.count > 8_000, "the state spills onto overflow pages")
        func pieces() throws -> Int {
            try snapshots.database.pool.writeWithoutTransaction { _ = try $0.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)") }
            let file = try Data(contentsOf: URL(fileURLWithPath: snapshots.database.path))
            return stride(from: 4_200, to: blob.count - 64, by: 500).count { file.range(of: blob[$0..<$0 + 32]) != nil }
        }
        #expect(try pieces() > 10, "the state is in the file")
        #expect(try snapshots.deleteVersion(model: "demo", version: 9, limit: 10) == 0)
        #expect(try snapshots.deleteUser(model: "demo", uid: uid) == 1)
        #expect(try pieces() == 0)
    }

    @Test func logAppendsInOrderAndReadsAfterASequence() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let seqs = try t.sqlite!.log.append((0..<5).map { Observation(model: "demo", uid: "u\($0)", item: "i1", label: Float($0), time: 1) }).compactMap { $0 }
        _ = try t.sqlite!.log.append([Observation(model: "other", uid: "x", item: "y", label: 1, time: 1)])
        #expect(seqs == seqs.sorted() && Set(seqs).count == 5)
        var seen: [LoggedObservation] = []
        try t.sqlite!.log.forEachObservation(model: "demo", after: seqs[1]) { seen.append($0) }
        #expect(seen.map(\.seq) == Array(seqs[2...]))
        #expect(seen.map(\.observation.uid) == ["u2", "u3", "u4"])
        #expect(try t.sqlite!.log.observationCount(model: "demo") == 5)
        #expect(try t.sqlite!.log.lastSequence() > seqs[4])
    }

    @Test func versionRoundTripsAndConflicts() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let v = try t.sqlite!.versions.loadVersion(model: "demo", number: 1)
        #expect(v.features.catalog.count == Set(t.ratings.map(\.item)).count)
        #expect(try t.sqlite!.versions.models().map(\.name) == ["demo"])
        let versions = try t.sqlite!.versions.versions(model: "demo")
        #expect(versions.count == 1 && versions[0].status == .serving)
        #expect(try t.sqlite!.snapshots.userCount(model: "demo", version: 1) == Set(t.ratings.map(\.uid)).count)
        #expect(try t.sqlite!.versions.initialRatings(model: "demo") == t.ratings)
        #expect(throws: StorageError.self) { try t.sqlite!.versions.insertVersion(v, trainingRatings: [], serve: true) }
        #expect(throws: StorageError.self) { try t.sqlite!.versions.loadVersion(model: "demo", number: 9) }
    }

    @Test func snapshotsSaveChangedUsersWithTheirSequence() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        var snapshot = try t.sqlite!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        let uid = snapshot.users.keys.sorted()[0]
        var w = snapshot.users[uid]!
        let f = (0..<w.ridge.stride).map { $0 < w.ridge.dimension ? Float(0.5) : 0 }
        f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: 2) }
        let fresh = UserWeights(ridge: RidgeState(prior: [Float](repeating: 0, count: w.ridge.dimension), lambda: 1), observations: 3, runningLoss: 0.25, bootstrapped: true)
        try t.sqlite!.snapshots.saveSnapshot(model: "demo", version: 1, rows: [.init(uid: uid, weights: w, seq: 42), .init(uid: "new", weights: fresh, seq: 40)])
        snapshot = try t.reopenSQLite()!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        #expect(snapshot.seq == 0 && snapshot.ahead == [uid: 42, "new": 40])
        #expect(snapshot.reflects(uid: uid, seq: 42) && !snapshot.reflects(uid: uid, seq: 43) && !snapshot.reflects(uid: "other", seq: 1))
        try t.sqlite!.snapshots.advanceSnapshot(model: "demo", version: 1, to: 41)
        snapshot = try t.reopenSQLite()!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        #expect(snapshot.seq == 41 && snapshot.ahead == [uid: 42])
        #expect(snapshot.users[uid] == w)
        #expect(snapshot.users["new"] == fresh)
    }

    /// The record of a version's hot users is replaced whole by each save, kept per version,
    /// and goes with the version's users.
    @Test func hotUsersAreReplacedPerVersionAndDeletedWithIt() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        #expect(try t.sqlite!.snapshots.hotUsers(model: "demo", version: 1).isEmpty, "none recorded yet")
        try t.sqlite!.snapshots.saveHotUsers(model: "demo", version: 1, ["u3", "u1", "u2", "u1"])
        try t.sqlite!.snapshots.saveHotUsers(model: "demo", version: 2, ["u9"])
        #expect(Set(try t.reopenSQLite()!.snapshots.hotUsers(model: "demo", version: 1)) == ["u1", "u2", "u3"])
        try t.sqlite!.snapshots.saveHotUsers(model: "demo", version: 1, ["u2", "u4"])
        #expect(Set(try t.sqlite!.snapshots.hotUsers(model: "demo", version: 1)) == ["u2", "u4"])
        try t.sqlite!.snapshots.deleteWholeVersion(model: "demo", version: 1)
        #expect(try t.sqlite!.snapshots.hotUsers(model: "demo", version: 1).isEmpty)
        #expect(try t.sqlite!.snapshots.hotUsers(model: "demo", version: 2) == ["u9"])
    }

    /// A user saved again is updated where its row is (same rowid, one row), not deleted and
    /// appended.
    @Test func aUserSavedAgainKeepsItsRow() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let snapshot = try t.sqlite!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        let uid = snapshot.users.keys.sorted()[0]
        func row() throws -> [Int64] {
            try t.sqlite!.snapshots.database.pool.read { db in
                try Int64.fetchAll(db, sql: "SELECT id FROM user_ridge WHERE model = 'demo' AND version = 1 AND uid = ?", arguments: [uid])
            }
        }
        let before = try row()
        var w = snapshot.users[uid]!
        w.observations += 5
        try t.sqlite!.snapshots.saveSnapshot(model: "demo", version: 1, rows: [.init(uid: uid, weights: w, seq: 9)])
        #expect(try row() == before && before.count == 1)
        let stored = try #require(try t.sqlite!.snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5))
        #expect(stored.weights == w && stored.seq == 9)
    }
}

/// A store written before tiering (full rows only, in `user_state`) is migrated: its rows move to
/// `user_ridge` and get their compact twins in `user_weights`, unchanged.
struct SnapshotMigrationTests {
    @Test func aSnapshotFromBeforeTieringIsMigrated() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let before = try t.sqlite!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        let rows = before.users.map { SnapshotRow(uid: $0.key, weights: $0.value, seq: 3) }
        // Back to the first schema: no compact rows, no user_ridge, full rows in user_state (RDG2).
        try t.sqlite!.snapshots.database.pool.write { db in
            try db.execute(sql: "DROP TABLE user_weights; DROP TABLE user_ridge")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier IN ('user_weights', 'user_ridge')")
        }
        try t.sqlite!.snapshots.saveLegacySnapshot(model: "demo", version: 1, rows: rows.map { r in
            var legacy = r
            legacy.state = before.users[r.uid]!.ridge.serializedUnpacked()
            return legacy
        })
        let migrated = try t.reopenSQLite()!
        let after = try migrated.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        #expect(after.users == before.users)
        #expect(try migrated.snapshots.userCount(model: "demo", version: 1) == before.users.count)
        var compact: [String: [Float]] = [:]
        try migrated.snapshots.forEachStoredWeights(model: "demo", version: 1, dimension: 5) { compact[$0.uid] = $0.weights }
        #expect(compact.count == before.users.count)
        #expect(compact.allSatisfy { uid, w in w == Array(before.users[uid]!.ridge.weights.prefix(5)) })
        let uid = before.users.keys.sorted()[0]
        #expect(try migrated.snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5)?.weights == before.users[uid])
        #expect(try migrated.snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5)?.seq == 3)
        #expect(try migrated.snapshots.database.pool.read { try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM user_state") } == 0)
    }

    /// A store whose log was indexed by user loses the index (so appends stay cheap), and the
    /// items its users observed move to the snapshot database's `user_item`.
    @Test func theLogsIndexByUserGivesWayToUserItems() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let uid = t.ratings[0].uid
        _ = try t.sqlite!.log.append([Observation(model: "demo", uid: uid, item: "new-item", label: 4, time: 1),
                                Observation(model: "demo", uid: "stranger", item: "i1", label: 2, time: 2),
                                Observation(model: "demo", uid: "stranger", item: "i1", label: 3, time: 3)])
        // Back to the schema before: the index, no user_item.
        try t.sqlite!.log.database.pool.write { db in
            try db.execute(sql: "CREATE INDEX observation_model_uid_seq ON observation (model, uid, seq)")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'log_without_user_index'")
        }
        try t.sqlite!.snapshots.database.pool.write { db in
            try db.execute(sql: "DROP TABLE user_item")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'user_item'")
        }
        let migrated = try t.reopenSQLite()!
        let indexes = try migrated.log.database.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'observation'") }
        #expect(!indexes.contains("observation_model_uid_seq") && indexes.contains("observation_model_seq"))
        #expect(try migrated.snapshots.observedItems(model: "demo", uid: "stranger") == ["i1"])
        let rated = try migrated.versions.trainingItems(model: "demo", uid: uid) + migrated.snapshots.observedItems(model: "demo", uid: uid)
        #expect(rated.sorted() == (t.ratings.filter { $0.uid == uid }.map(\.item) + ["new-item"]).sorted())
    }
}

/// A snapshot database from before items' online states (migrated up to "user_hot") gains
/// `item_state` and `snapshot_kept` when opened, and keeps its users.
struct ItemStateMigrationTests {
    @Test func aSnapshotFromBeforeItemStatesIsMigrated() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let before = try t.sqlite!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        try t.sqlite!.snapshots.database.pool.write { db in
            try db.execute(sql: "DROP TABLE item_state; DROP TABLE snapshot_kept")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = 'item_state'")
        }
        func tables(_ stores: SQLiteStores) throws -> Set<String> {
            try Set(stores.snapshots.database.pool.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") })
        }
        #expect(try tables(t.sqlite!).isDisjoint(with: ["item_state", "snapshot_kept"]))
        let migrated = try #require(try t.reopenSQLite())
        #expect(try tables(migrated).isSuperset(of: ["item_state", "snapshot_kept"]))
        #expect(try migrated.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5).users == before.users)
        #expect(try migrated.snapshots.loadItemStates(model: "demo", version: 1, dimension: 5).isEmpty)
        let ridge = RidgeState(prior: [Float](repeating: 0.5, count: 5), lambda: 1)
        try migrated.snapshots.saveItemStates(model: "demo", version: 1, rows: [ItemStateRow(item: "i1", ridge: ridge, observations: 1, seq: 3)],
                                              keepingPrevious: true)
        #expect(try t.reopenSQLite()!.snapshots.loadItemStates(model: "demo", version: 1, dimension: 5).map(\.ridge) == [ridge])
        #expect(try t.reopenSQLite()!.snapshots.restoreInterruptedSnapshot(model: "demo", version: 1) == 1)
    }
}

/// The catalogue's items in `catalog.sqlite`'s `item` table.
struct SQLiteCatalogueItemTests {
    /// A row whose attributes are not a JSON object of values is reported, naming the model and
    /// the item, by the catalogue's reads alike; other models read on.
    @Test func unreadableAttributesAreCorrupt() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let versions = t.sqlite!.versions
        try versions.putItems(model: "demo", [CatalogueItem(id: "i1", attributes: ["genre": .string("drama")]), CatalogueItem(id: "i2")])
        try versions.putItems(model: "other", [CatalogueItem(id: "i1")])
        try versions.database.pool.write { db in
            try db.execute(sql: "UPDATE item SET attributes = '{\"genre\": {\"nested\": 1}}' WHERE model = 'demo' AND id = 'i1'")
        }
        let reads: [() throws -> Void] = [{ _ = try versions.catalogueItems(model: "demo") }, { _ = try versions.catalogueItem(model: "demo", id: "i1") }]
        for read in reads {
            let error = try #require(throws: StorageError.self) { try read() }
            #expect(error.code == .corrupt && error.message.contains("i1") && error.message.contains("demo"))
        }
        #expect(try versions.catalogueItem(model: "demo", id: "i2") == CatalogueItem(id: "i2"))
        #expect(try versions.catalogueItems(model: "other").map(\.id) == ["i1"])
        try versions.database.pool.write { db in try db.execute(sql: "UPDATE item SET attributes = 'not json' WHERE model = 'other'") }
        #expect(throws: StorageError.self) { try versions.catalogueItems(model: "other") }
    }

    /// Attributes are stored as JSON with sorted keys; a replaced item keeps its position, so the
    /// order is that of first writes even after a `VACUUM` (which may renumber rowids).
    @Test func itemsAreStoredAsSortedJSONInFirstWriteOrder() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let versions = t.sqlite!.versions
        try versions.putItems(model: "demo", [CatalogueItem(id: "b", attributes: ["z": .number(1), "a": .strings(["t"])]), CatalogueItem(id: "a")])
        try versions.putItems(model: "demo", [CatalogueItem(id: "c"), CatalogueItem(id: "b", attributes: ["z": .number(2), "a": .string("s")])])
        let json = try versions.database.pool.read { db in
            try String.fetchOne(db, sql: "SELECT attributes FROM item WHERE model = 'demo' AND id = 'b'")
        }
        #expect(json == #"{"a":"s","z":2}"#)
        try versions.database.pool.writeWithoutTransaction { db in try db.execute(sql: "VACUUM") }
        #expect(try t.reopenSQLite()!.versions.catalogueItems(model: "demo").map(\.id) == ["b", "a", "c"])
    }

    /// A catalogue written before items (without "catalog-v2-items" and the item migrations after
    /// it) gets the `item` table when opened, and keeps its versions.
    @Test func aCatalogueFromBeforeItemsIsMigrated() throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        try t.sqlite!.versions.database.pool.write { db in
            try db.execute(sql: "DROP TABLE item")
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier IN ('catalog-v2-items', 'catalog-v4-item-revision')")
        }
        let migrated = try t.reopenSQLite()!
        #expect(try migrated.versions.catalogueItems(model: "demo").isEmpty)
        try migrated.versions.putItems(model: "demo", [CatalogueItem(id: "i1", hidden: true)])
        #expect(try t.reopenSQLite()!.versions.catalogueItem(model: "demo", id: "i1")?.hidden == true)
        #expect(try migrated.versions.catalogueChanges(model: "demo", after: 0).revision == 1)
        #expect(try migrated.versions.versions(model: "demo").map(\.number) == [1])
    }
}
