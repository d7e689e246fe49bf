import GRDB

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
        return migrator
    }

    /// The schema of the snapshot database.
    static var snapshotMigrator: DatabaseMigrator {
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
        return migrator
    }
}
