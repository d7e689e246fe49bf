import GRDB

extension SQLiteObservationLog {
    /// The schema, one migration per change. A shipped migration is never edited
    /// (docs/architecture.md, storage semantics). The first ones also built the catalogue's
    /// tables, from before the catalogue had its own database; opening the stores moves them
    /// out (``SQLiteVersionStore/moveCatalogue(from:)``).
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
            // Each model's exploration policy, and the decision an observation answers.
            try db.execute(sql: """
                ALTER TABLE model ADD COLUMN exploration TEXT NOT NULL DEFAULT 'greedy';
                ALTER TABLE observation ADD COLUMN event_id TEXT;
                CREATE INDEX observation_event ON observation (model, event_id) WHERE event_id IS NOT NULL;
                """)
        }
        migrator.registerMigration("v3-competition") { db in
            // A challenger version competing with the serving one for traffic.
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
        // Idempotent observes: a client's id for an observation, unique per model, so a retry is
        // not logged twice. The index holds only observations that carry one.
        migrator.registerMigration("observation_id") { db in
            try db.execute(sql: """
                ALTER TABLE observation ADD COLUMN observation_id TEXT;
                CREATE UNIQUE INDEX observation_id_unique ON observation (model, observation_id) WHERE observation_id IS NOT NULL;
                """)
        }
        return migrator
    }
}
