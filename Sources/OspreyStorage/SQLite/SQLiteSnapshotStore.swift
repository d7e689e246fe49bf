import Foundation
import GRDB
import OspreyMath
import OspreyModel

/// User-weight snapshots in `snapshots.sqlite`, a file of its own so that a snapshot's large
/// writes never hold up an observation's commit (SQLite has one writer per file). Tables:
/// `user_ridge` (full ridge states, "RDG3"), `user_weights` (their compact twins, written in the
/// same transaction), `item_state` (items' online ridge states), `snapshot_kept` (the rows a
/// snapshot in progress overwrote, as they were before it; `SQLiteSnapshotStore+Kept.swift`),
/// `snapshot` (each version's snapshot sequence), `user_item` (items users observed) and
/// `user_hot` (the users hot at the last snapshot).
public final class SQLiteSnapshotStore: SnapshotStore, Sendable {
    /// The snapshot database file inside a data directory.
    public static let fileName = "snapshots.sqlite"
    /// The database the snapshots are in.
    public let database: SQLiteDatabase
    var pool: DatabasePool { database.pool }

    /// Opens the snapshot database at `path`; `log` is read once, by the migration that fills
    /// `user_item` from the observations logged before it existed. `lock` is held while the
    /// store is open. A write waits `busySeconds` for another process's.
    init(path: String, log: SQLiteObservationLog, lock: DataDirectoryLock?, readOnly: Bool = false,
         busySeconds: Double = SQLiteDatabase.busySeconds) throws {
        database = try SQLiteDatabase(path: path, migrator: Self.migrator(log: log.database.pool), lock: lock, readOnly: readOnly,
                                      checkpointPages: Self.checkpointPages, busySeconds: busySeconds)
    }

    /// The WAL pages after which a commit copies them into the database file and syncs it
    /// (`wal_autocheckpoint`; SQLite's default is 1,000, 4 MB). Small, so each sync of this file
    /// writes little and a log commit that waits behind it on the disk waits little
    /// (`Snapshotter.snapshotChunk` in OspreyEngine, BENCHMARKS.md).
    public static let checkpointPages = 16

    public func replaceUsers(model: String, version: Int, reflecting seq: Int64,
                             _ rows: (_ write: ([SnapshotRow]) throws -> Void) throws -> Void) throws {
        try pool.write { db in
            for table in ["user_ridge", "user_weights", "item_state", "snapshot_kept", "snapshot"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE model = ? AND version = ?", arguments: [model, version])
            }
        }
        try rows { chunk in try pool.write { db in try Self.insert(chunk, model: model, version: version, keepingPrevious: false, db) } }
        // Last: a version whose snapshot row exists has all its users.
        try pool.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO snapshot (model, version, seq) VALUES (?, ?, ?)", arguments: [model, version, seq])
        }
    }

    public func loadSnapshot(model: String, version: Int, dimension: Int) throws -> UserSnapshot {
        try pool.read { db in
            guard let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM snapshot WHERE model = ? AND version = ?",
                                               arguments: [model, version])
            else { throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)") }
            var users: [String: UserWeights] = [:]
            var ahead: [String: Int64] = [:]
            let rows = try Row.fetchCursor(
                db, sql: "SELECT uid, state, observations, running_loss, bootstrapped, seq FROM user_ridge WHERE model = ? AND version = ?",
                arguments: [model, version])
            while let row = try rows.next() {
                let uid: String = row[0]
                let ridge = try Self.ridgeState(row[1], SnapshotRowKey(table: "user_ridge", model: model, version: version, uid: uid),
                                                dimension: dimension)
                users[uid] = UserWeights(ridge: ridge, observations: row[2], runningLoss: row[3], bootstrapped: row[4])
                let rowSeq: Int64 = row[5]
                if rowSeq > seq { ahead[uid] = rowSeq }
            }
            return UserSnapshot(seq: seq, users: users, ahead: ahead)
        }
    }

    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem], keepingPrevious: Bool) throws {
        try pool.write { db in
            try Self.insert(rows, model: model, version: version, keepingPrevious: keepingPrevious, db)
            try Self.insert(observedItems, model: model, db)
        }
    }

    /// O(items · log n).
    public func saveObservedItems(model: String, _ items: [ObservedItem]) throws {
        guard !items.isEmpty else { return }
        try pool.write { db in try Self.insert(items, model: model, db) }
    }

    private static func insert(_ items: [ObservedItem], model: String, _ db: Database) throws {
        guard !items.isEmpty else { return }
        let insert = try db.cachedStatement(sql: "INSERT OR IGNORE INTO user_item (model, uid, item) VALUES (?, ?, ?)")
        for i in items { try insert.execute(arguments: [model, i.uid, i.item]) }
    }

    /// Writes (or replaces) each row's full state in `user_ridge` and its compact twin in
    /// `user_weights`, in the caller's transaction, so the two never disagree. A user's full row
    /// is updated where it is (an upsert): `INSERT OR REPLACE` would delete it and append it
    /// under a new rowid, rewriting its entry in the unique index and a second leaf page too.
    /// With `keepingPrevious`, each user's row is kept first (``keepUser(model:version:uid:_:)``).
    private static func insert(_ rows: [SnapshotRow], model: String, version: Int, keepingPrevious: Bool, _ db: Database) throws {
        let full = try db.cachedStatement(sql: """
            INSERT INTO user_ridge (model, version, uid, state, observations, running_loss, bootstrapped, seq)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (model, version, uid) DO UPDATE SET state = excluded.state, observations = excluded.observations,
                running_loss = excluded.running_loss, bootstrapped = excluded.bootstrapped, seq = excluded.seq
            """)
        let compact = try db.cachedStatement(
            sql: "INSERT OR REPLACE INTO user_weights (model, version, uid, weights, observations, running_loss, bootstrapped, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
        for r in rows {
            if keepingPrevious { try keepUser(model: model, version: version, uid: r.uid, db) }
            try full.execute(arguments: [model, version, r.uid, Data(r.state), r.observations, r.runningLoss, r.bootstrapped, r.seq])
            try compact.execute(arguments: [model, version, r.uid, Float32Blob.data(r.weights), r.observations, r.runningLoss, r.bootstrapped, r.seq])
        }
    }

    /// Writes rows into the first schema's `user_state` table only (the full states as releases
    /// before the `user_ridge` migration read them; no compact rows): for benchmarks that compare
    /// against such a release on the same data. A current store does not read these rows.
    public func saveLegacySnapshot(model: String, version: Int, rows: [SnapshotRow]) throws {
        try pool.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT OR REPLACE INTO user_state (model, version, uid, state, observations, running_loss, bootstrapped, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            for r in rows {
                try insert.execute(arguments: [model, version, r.uid, Data(r.state), r.observations, r.runningLoss, r.bootstrapped, r.seq])
            }
        }
    }

    public func snapshotSequence(model: String, version: Int) throws -> Int64 {
        try pool.read { db in
            guard let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM snapshot WHERE model = ? AND version = ?",
                                               arguments: [model, version])
            else { throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)") }
            return seq
        }
    }

    public func forEachStoredWeights(model: String, version: Int, dimension: Int, _ body: (StoredWeights) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT uid, weights, observations, running_loss, bootstrapped, seq FROM user_weights WHERE model = ? AND version = ?",
                arguments: [model, version])
            while let row = try rows.next() {
                let uid: String = row[0]
                let w = try Self.weights(row[1], SnapshotRowKey(table: "user_weights", model: model, version: version, uid: uid),
                                         dimension: dimension)
                try body(StoredWeights(uid: uid, weights: w, observations: row[2], runningLoss: row[3], bootstrapped: row[4], seq: row[5]))
            }
        }
    }

    public func loadUserState(model: String, version: Int, uid: String, dimension: Int) throws -> (weights: UserWeights, seq: Int64)? {
        // One statement reads consistently on its own: no explicit transaction, and the
        // prepared statement is reused (this runs on every hot-tier miss).
        try pool.unsafeRead { db in
            let statement = try db.cachedStatement(
                sql: "SELECT state, observations, running_loss, bootstrapped, seq FROM user_ridge WHERE model = ? AND version = ? AND uid = ?")
            guard let row = try Row.fetchOne(statement, arguments: [model, version, uid]) else { return nil }
            let ridge = try Self.ridgeState(row[0], SnapshotRowKey(table: "user_ridge", model: model, version: version, uid: uid),
                                            dimension: dimension)
            return (UserWeights(ridge: ridge, observations: row[1], runningLoss: row[2], bootstrapped: row[3]), row[4])
        }
    }

    public func saveHotUsers(model: String, version: Int, _ uids: [String]) throws {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM user_hot WHERE model = ? AND version = ?", arguments: [model, version])
            let insert = try db.cachedStatement(sql: "INSERT INTO user_hot (model, version, uid) VALUES (?, ?, ?)")
            // In key order, so each insert goes to the end of the B-tree.
            var last: String?
            for uid in uids.sorted() where uid != last {
                try insert.execute(arguments: [model, version, uid])
                last = uid
            }
        }
    }

    public func hotUsers(model: String, version: Int) throws -> [String] {
        try pool.read { db in
            try String.fetchAll(db, sql: "SELECT uid FROM user_hot WHERE model = ? AND version = ?", arguments: [model, version])
        }
    }

    public func advanceSnapshot(model: String, version: Int, to seq: Int64) throws {
        // The kept copies hold nothing erased (an erasure waits for a snapshot under way and
        // deletes its user's copies itself): deleting 60,000 copies of 11 KB (a snapshot of
        // 60,000 users at d = 50) took 3.6–3.8 s with their pages zeroed and 0.3 s without, all
        // of it holding the write lock.
        try writeWithoutZeroing { db in
            try db.execute(sql: "UPDATE snapshot SET seq = ? WHERE model = ? AND version = ? AND seq < ?",
                           arguments: [seq, model, version, seq])
            // The snapshot completed: nothing of it is to be undone.
            try db.execute(sql: "DELETE FROM snapshot_kept WHERE model = ? AND version = ?", arguments: [model, version])
        }
    }

    /// Runs `body` in one write transaction with `secure_delete = FAST`: the pages freed by its
    /// deletions are not overwritten with zeros, for deletions of rows that hold nothing erased.
    private func writeWithoutZeroing<T>(_ body: (Database) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = FAST")
            defer { try? db.execute(sql: "PRAGMA secure_delete = ON") }
            var result: T?
            try db.inTransaction {
                result = try body(db)
                return .commit
            }
            return result!
        }
    }

    /// The version's tables, each with the rowid a chunk of its rows is found again by (nil: a
    /// WITHOUT ROWID table, keyed by model, version and uid). The snapshot sequence goes last.
    static let versionTables: [(table: String, rowid: String?)] = [
        ("user_ridge", "id"), ("user_weights", nil), ("item_state", "id"), ("snapshot_kept", "rowid"), ("user_hot", nil),
    ]

    public func deleteVersion(model: String, version: Int, limit: Int) throws -> Int {
        precondition(limit > 0, "a version is deleted at least one row at a time")
        // A deleted version holds nothing erased (an erasure deletes from every version), so its
        // freed pages are not zeroed: a 1 GB version would be written over once more, through
        // the WAL.
        return try writeWithoutZeroing { db in
            var deleted = 0
            for (table, rowid) in Self.versionTables where deleted < limit {
                let chunk = "SELECT \(rowid ?? "uid") FROM \(table) WHERE model = ? AND version = ? LIMIT ?"
                if let rowid {
                    // By rowid alone: `model = ? AND version = ? AND id IN (…)` would have
                    // SQLite scan the version's rows for each chunk instead.
                    try db.execute(sql: "DELETE FROM \(table) WHERE \(rowid) IN (\(chunk))", arguments: [model, version, limit - deleted])
                } else {
                    try db.execute(sql: "DELETE FROM \(table) WHERE model = ? AND version = ? AND uid IN (\(chunk))",
                                   arguments: [model, version, model, version, limit - deleted])
                }
                deleted += db.changesCount
            }
            if deleted == 0 {
                try db.execute(sql: "DELETE FROM snapshot WHERE model = ? AND version = ?", arguments: [model, version])
                deleted = db.changesCount
            }
            return deleted
        }
    }

    public func storedVersions(model: String) throws -> [Int] {
        try pool.read { db in
            var versions = Set<Int>()
            for table in Self.versionTables.map(\.table) + ["snapshot"] {
                // One seek per version: the tables are keyed (or uniquely indexed) by model and version first.
                var after = Int.min
                while let v = try Int.fetchOne(db, sql: "SELECT MIN(version) FROM \(table) WHERE model = ? AND version > ?",
                                               arguments: [model, after]) {
                    versions.insert(v)
                    after = v
                }
            }
            return versions.sorted()
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        try pool.write { db in
            var erased = 0
            // `user_ridge` is the twin of `user_weights`: the same (model, version, uid) rows.
            try db.execute(sql: "DELETE FROM user_ridge WHERE model = ? AND uid = ?", arguments: [model, uid])
            // So that no restore of an interrupted snapshot brings the user back; not counted.
            try db.execute(sql: "DELETE FROM snapshot_kept WHERE model = ? AND kind = 'user' AND key = ?", arguments: [model, uid])
            for table in ["user_weights", "user_item", "user_hot"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE model = ? AND uid = ?", arguments: [model, uid])
                erased += db.changesCount
            }
            return erased
        }
    }

    /// A primary-key range read of `user_item`, through a reused statement and no explicit
    /// transaction (`exclude_observed` runs it per request).
    public func observedItems(model: String, uid: String) throws -> [String] {
        try pool.unsafeRead { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT item FROM user_item WHERE model = ? AND uid = ?"),
                                arguments: [model, uid])
        }
    }

    public func userCount(model: String, version: Int) throws -> Int {
        try pool.read { db in
            // The compact table has the same rows and a fraction of the pages to count.
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user_weights WHERE model = ? AND version = ?", arguments: [model, version]) ?? 0
        }
    }
}
