import Foundation
import GRDB
import OspreyMath

extension SQLiteStore {
    /// The schema, one migration per change. A shipped migration is never edited (DESIGN.md §6).
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE model (
                    name TEXT PRIMARY KEY NOT NULL,
                    serving_version INTEGER NOT NULL,
                    created_at REAL NOT NULL
                );
                CREATE TABLE version (
                    model TEXT NOT NULL,
                    number INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    status TEXT NOT NULL,
                    parent INTEGER,
                    dimension INTEGER NOT NULL,
                    lambda REAL NOT NULL,
                    item_count INTEGER NOT NULL,
                    metadata TEXT NOT NULL,
                    item_ids BLOB NOT NULL,
                    features BLOB NOT NULL,
                    offsets BLOB NOT NULL,
                    prior BLOB NOT NULL,
                    PRIMARY KEY (model, number)
                );
                CREATE TABLE observation (
                    seq INTEGER PRIMARY KEY,
                    model TEXT NOT NULL,
                    uid TEXT NOT NULL,
                    item TEXT NOT NULL,
                    label REAL NOT NULL,
                    time REAL NOT NULL
                );
                CREATE INDEX observation_model_seq ON observation (model, seq);
                CREATE TABLE training_rating (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    item TEXT NOT NULL,
                    label REAL NOT NULL,
                    time REAL NOT NULL
                );
                CREATE INDEX training_rating_model ON training_rating (model, version);
                """)
        }
        migrator.registerMigration("v2-exploration") { db in
            // Each model's exploration policy (issue 5), and the decision an observation answers.
            try db.execute(sql: """
                ALTER TABLE model ADD COLUMN exploration TEXT NOT NULL DEFAULT 'greedy';
                ALTER TABLE observation ADD COLUMN event_id TEXT;
                CREATE INDEX observation_event ON observation (model, event_id) WHERE event_id IS NOT NULL;
                """)
        }
        migrator.registerMigration("v3-competition") { db in
            // A challenger version competing with the serving one for traffic (issue 5).
            try db.execute(sql: """
                ALTER TABLE model ADD COLUMN challenger_version INTEGER;
                ALTER TABLE model ADD COLUMN challenger_allocation TEXT;
                ALTER TABLE model ADD COLUMN challenger_since REAL;
                """)
        }
        // Tiered user state: a cold user's ridge state is rebuilt from its snapshot row plus its
        // own log entries after it, and `exclude_observed` reads one user's rated items on demand.
        migrator.registerMigration("observation_by_user") { db in
            try db.execute(sql: """
                CREATE INDEX observation_model_uid_seq ON observation (model, uid, seq);
                CREATE INDEX training_rating_model_uid ON training_rating (model, uid);
                """)
        }
        // The log's index by user put every appended observation on a random leaf of a B-tree:
        // one more WAL page per observation in each group commit (durable observe fell from
        // ~20k/s, p99 3 ms, to ~14k/s, p99 11 ms). A rebuild now reads a user's log entries only
        // after a failed one (a sequence range), and the items each user observed are kept in
        // the snapshot database's `user_item` (written with the snapshots); only the training
        // ratings, written once, stay indexed by user.
        migrator.registerMigration("log_without_user_index") { db in
            try db.execute(sql: "DROP INDEX IF EXISTS observation_model_uid_seq")
        }
        return migrator
    }

    /// The schema of the decision database: top-k answers as logged for off-policy evaluation.
    static var decisionMigrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE decision (
                    event_id TEXT PRIMARY KEY NOT NULL,
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    policy TEXT NOT NULL,
                    time REAL NOT NULL,
                    items BLOB NOT NULL,
                    scores BLOB NOT NULL,
                    exploring BLOB NOT NULL,
                    propensities BLOB NOT NULL,
                    explored BLOB NOT NULL,
                    candidates BLOB
                );
                CREATE INDEX decision_model_time ON decision (model, time);
                """)
        }
        migrator.registerMigration("v2-assignment") { db in
            // Which version a user was allocated to in a competition started at `since`.
            try db.execute(sql: """
                CREATE TABLE assignment (
                    model TEXT NOT NULL,
                    since REAL NOT NULL,
                    uid TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    PRIMARY KEY (model, since, uid)
                ) WITHOUT ROWID;
                """)
        }
        migrator.registerMigration("v3-count-without-time-index") { db in
            // Each model's decisions logged, kept by the appends (a prune leaves it), so the
            // count at start needs no index; a competition's decisions are found by time over
            // the rowids (see `decisionVersions`). The `(model, time)` index cost 16–32 % of
            // each append's CPU at the cap (BENCHMARKS.md).
            try db.execute(sql: """
                CREATE TABLE decision_count (
                    model TEXT PRIMARY KEY NOT NULL,
                    logged INTEGER NOT NULL
                ) WITHOUT ROWID;
                INSERT INTO decision_count (model, logged) SELECT model, COUNT(*) FROM decision GROUP BY model;
                DROP INDEX decision_model_time;
                """)
        }
        return migrator
    }

    /// The schema of the snapshot database; `log` is the main database, read once to fill
    /// `user_item` from the observations logged before it existed.
    static func snapshotMigrator(log: DatabasePool) -> DatabaseMigrator {
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
                try insert.execute(arguments: [row[0], row[1], row[2], SQLiteStore.data(w), row[4], row[5], row[6], row[7]])
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
        return migrator
    }
}
