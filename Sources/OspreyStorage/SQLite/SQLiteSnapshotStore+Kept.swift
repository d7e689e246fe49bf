import GRDB

/// The kept copies of `snapshot_kept`: what a snapshot written with `keepingPrevious` overwrote,
/// as it was before the snapshot, so that a snapshot cut short is undone as one (see
/// ``SnapshotStore``, "Kept copies"). Each copy is taken by SQL in the write's own transaction,
/// before the row is overwritten; `INSERT OR IGNORE` leaves an existing copy, the first one, as it is.
extension SQLiteSnapshotStore {
    /// Keeps user `uid`'s full state and compact twin, or marks it absent. O(d² + log n).
    static func keepUser(model: String, version: Int, uid: String, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO snapshot_kept (model, version, kind, key, present, observations, running_loss, bootstrapped, seq, weights, state)
            SELECT r.model, r.version, 'user', r.uid, 1, r.observations, r.running_loss, r.bootstrapped, r.seq, w.weights, r.state
            FROM user_ridge r JOIN user_weights w ON w.model = r.model AND w.version = r.version AND w.uid = r.uid
            WHERE r.model = ? AND r.version = ? AND r.uid = ?
            """).execute(arguments: [model, version, uid])
        // Ignored when the row was kept just now or before.
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO snapshot_kept (model, version, kind, key, present) VALUES (?, ?, 'user', ?, 0)")
            .execute(arguments: [model, version, uid])
    }

    /// Keeps item `item`'s state, or marks it absent. O(d² + log n).
    static func keepItem(model: String, version: Int, item: String, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO snapshot_kept (model, version, kind, key, present, observations, seq, state)
            SELECT model, version, 'item', item, 1, observations, seq, state FROM item_state WHERE model = ? AND version = ? AND item = ?
            """).execute(arguments: [model, version, item])
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO snapshot_kept (model, version, kind, key, present) VALUES (?, ?, 'item', ?, 0)")
            .execute(arguments: [model, version, item])
    }

    public func restoreInterruptedSnapshot(model: String, version: Int) throws -> Int {
        try pool.write { db in
            let args: StatementArguments = [model, version]
            let kept = "FROM snapshot_kept WHERE model = ? AND version = ?"
            var restored = 0
            // `WHERE` keeps SQLite from reading the upsert's `ON CONFLICT` as a join's `ON`.
            try db.execute(sql: """
                INSERT INTO user_ridge (model, version, uid, observations, running_loss, bootstrapped, seq, state)
                SELECT model, version, key, observations, running_loss, bootstrapped, seq, state \(kept) AND kind = 'user' AND present
                ON CONFLICT (model, version, uid) DO UPDATE SET state = excluded.state, observations = excluded.observations,
                    running_loss = excluded.running_loss, bootstrapped = excluded.bootstrapped, seq = excluded.seq
                """, arguments: args)
            restored += db.changesCount
            try db.execute(sql: """
                INSERT OR REPLACE INTO user_weights (model, version, uid, weights, observations, running_loss, bootstrapped, seq)
                SELECT model, version, key, weights, observations, running_loss, bootstrapped, seq \(kept) AND kind = 'user' AND present
                """, arguments: args)
            try db.execute(sql: """
                INSERT INTO item_state (model, version, item, observations, seq, state)
                SELECT model, version, key, observations, seq, state \(kept) AND kind = 'item' AND present
                ON CONFLICT (model, version, item) DO UPDATE SET observations = excluded.observations, seq = excluded.seq,
                    state = excluded.state
                """, arguments: args)
            restored += db.changesCount
            // Rows the snapshot created: gone, from both user tables (counted once).
            for (table, column, kind) in [("user_ridge", "uid", "user"), ("user_weights", "uid", "user"), ("item_state", "item", "item")] {
                try db.execute(sql: """
                    DELETE FROM \(table) WHERE model = ? AND version = ? AND \(column) IN
                        (SELECT key \(kept) AND kind = '\(kind)' AND NOT present)
                    """, arguments: [model, version, model, version])
                if table != "user_weights" { restored += db.changesCount }
            }
            try db.execute(sql: "DELETE \(kept)", arguments: args)
            return restored
        }
    }
}
