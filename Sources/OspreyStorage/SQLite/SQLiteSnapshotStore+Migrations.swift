import Foundation
import GRDB
import OspreyMath

extension SQLiteSnapshotStore {
    /// The schema of the snapshot database; `log` is the main database, read once to fill
    /// `user_item` from the observations logged before it existed.
    static func migrator(log: DatabasePool) -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE user_state (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    state BLOB NOT NULL,
                    observations INTEGER NOT NULL,
                    running_loss REAL,
                    bootstrapped INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY (model, version, uid)
                ) WITHOUT ROWID;
                CREATE TABLE snapshot (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY (model, version)
                );
                """)
        }
        // The compact twin of `user_state`: w_u and the small fields, written with every row of
        // it, so that a start loads all users' weights without reading their d×d statistics.
        // Existing snapshots are copied over from their full rows.
        migrator.registerMigration("user_weights") { db in
            try db.execute(sql: """
                CREATE TABLE user_weights (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    weights BLOB NOT NULL,
                    observations INTEGER NOT NULL,
                    running_loss REAL,
                    bootstrapped INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    PRIMARY KEY (model, version, uid)
                ) WITHOUT ROWID;
                """)
            let rows = try Row.fetchCursor(
                db, sql: "SELECT model, version, uid, state, observations, running_loss, bootstrapped, seq FROM user_state")
            let insert = try db.makeStatement(
                sql: "INSERT INTO user_weights (model, version, uid, weights, observations, running_loss, bootstrapped, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            while let row = try rows.next() {
                let blob: Data = row[3]
                guard let ridge = try? RidgeState(serialized: blob) else {
                    throw StorageError(.corrupt, "stored weights of user \(row[2] as String) are unreadable")
                }
                let w = Array(ridge.weights[0..<ridge.dimension])
                try insert.execute(arguments: [row[0], row[1], row[2], Float32Blob.data(w), row[4], row[5], row[6], row[7]])
            }
        }
        // Full states move to a rowid table. In the WITHOUT ROWID `user_state` a ~11 KB row spills
        // onto overflow pages, and every key comparison on the way down its B-tree (whose
        // interior cells hold whole rows) reads that overflow chain: ~55 page reads per point
        // read. Here the key lives in a small unique index and the row is found by rowid; the
        // blob is the last column, so the small ones stay on the leaf page.
        migrator.registerMigration("user_ridge") { db in
            try db.execute(sql: """
                CREATE TABLE user_ridge (
                    id INTEGER PRIMARY KEY,
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    observations INTEGER NOT NULL,
                    running_loss REAL,
                    bootstrapped INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    state BLOB NOT NULL,
                    UNIQUE (model, version, uid)
                );
                INSERT INTO user_ridge (model, version, uid, observations, running_loss, bootstrapped, seq, state)
                    SELECT model, version, uid, observations, running_loss, bootstrapped, seq, state FROM user_state;
                DELETE FROM user_state;
                """)
        }
        // The items each user of a model has observed (the log's, not the training ratings'),
        // for `exclude_observed`: written by each snapshot with the users' states, so the log
        // needs no index by user. Filled here from the log as it stands.
        migrator.registerMigration("user_item") { db in
            try db.execute(sql: """
                CREATE TABLE user_item (
                    model TEXT NOT NULL,
                    uid TEXT NOT NULL,
                    item TEXT NOT NULL,
                    PRIMARY KEY (model, uid, item)
                ) WITHOUT ROWID;
                """)
            let insert = try db.makeStatement(sql: "INSERT OR IGNORE INTO user_item (model, uid, item) VALUES (?, ?, ?)")
            try log.read { source in
                let rows = try Row.fetchCursor(source, sql: "SELECT model, uid, item FROM observation")
                while let row = try rows.next() {
                    try insert.execute(arguments: [row[0] as String, row[1] as String, row[2] as String])
                }
            }
        }
        // The users whose full state a serving process held in memory (its hot tier) at its
        // last snapshot, for the next start's warm start.
        migrator.registerMigration("user_hot") { db in
            try db.execute(sql: """
                CREATE TABLE user_hot (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    PRIMARY KEY (model, version, uid)
                ) WITHOUT ROWID;
                """)
        }
        // Items' online ridge states, one row per (model, version, item), and the kept copies of
        // rows a snapshot overwrote (docs/architecture.md, "Storage semantics"). Both are rowid
        // tables with their blobs last, for the reason given at `user_ridge`. A kept copy with
        // `present` 0 records a row that did not exist (its other columns are NULL); `weights`
        // is a user's compact twin, NULL for an item.
        migrator.registerMigration("item_state") { db in
            try db.execute(sql: """
                CREATE TABLE item_state (
                    id INTEGER PRIMARY KEY,
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    item TEXT NOT NULL,
                    observations INTEGER NOT NULL,
                    seq INTEGER NOT NULL,
                    state BLOB NOT NULL,
                    UNIQUE (model, version, item)
                );
                CREATE TABLE snapshot_kept (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('user', 'item')),
                    key TEXT NOT NULL,
                    present INTEGER NOT NULL,
                    observations INTEGER,
                    running_loss REAL,
                    bootstrapped INTEGER,
                    seq INTEGER,
                    weights BLOB,
                    state BLOB,
                    PRIMARY KEY (model, version, kind, key)
                );
                """)
        }
        return migrator
    }
}
