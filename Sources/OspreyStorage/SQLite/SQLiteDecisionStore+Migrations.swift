import GRDB

extension SQLiteDecisionStore {
    /// The schema of the decision database: top-k answers as logged for off-policy evaluation.
    static var migrator: DatabaseMigrator {
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
}
