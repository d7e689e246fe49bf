import PostgresNIO

/// The kept copies of `kept_user` and `kept_item`: what a snapshot written with
/// `keepingPrevious` overwrote, as it was before the snapshot, so that a snapshot cut short is
/// undone as one (see ``SnapshotStore``, "Kept copies"). Each copy is taken by the write's own
/// statement (``PostgresSnapshotStore/upsert(_:model:version:keepingPrevious:_:)``,
/// ``PostgresSnapshotStore/saveItemStates(model:version:rows:keepingPrevious:)``), before the
/// row is overwritten; `ON CONFLICT DO NOTHING` leaves an existing copy, the first one, as it is.
/// A copy with `present` false records a row that did not exist (its other columns are NULL).
extension PostgresSnapshotStore {
    public func restoreInterruptedSnapshot(model: String, version: Int) throws -> Int {
        try database.transaction { s in
            var restored = 0
            restored += try s.execute("""
                INSERT INTO user_ridge (model, version, uid, observations, running_loss, bootstrapped, seq, state)
                SELECT model, version, uid, observations, running_loss, bootstrapped, seq, state FROM kept_user
                WHERE model = \(model) AND version = \(version) AND present
                ON CONFLICT (model, version, uid) DO UPDATE SET observations = EXCLUDED.observations,
                    running_loss = EXCLUDED.running_loss, bootstrapped = EXCLUDED.bootstrapped, seq = EXCLUDED.seq,
                    state = EXCLUDED.state
                """)
            try s.execute("""
                INSERT INTO user_weights (model, version, uid, observations, running_loss, bootstrapped, seq, weights)
                SELECT model, version, uid, observations, running_loss, bootstrapped, seq, weights FROM kept_user
                WHERE model = \(model) AND version = \(version) AND present
                ON CONFLICT (model, version, uid) DO UPDATE SET observations = EXCLUDED.observations,
                    running_loss = EXCLUDED.running_loss, bootstrapped = EXCLUDED.bootstrapped, seq = EXCLUDED.seq,
                    weights = EXCLUDED.weights
                """)
            restored += try s.execute("""
                INSERT INTO item_state (model, version, item, observations, seq, state)
                SELECT model, version, item, observations, seq, state FROM kept_item
                WHERE model = \(model) AND version = \(version) AND present
                ON CONFLICT (model, version, item) DO UPDATE SET observations = EXCLUDED.observations, seq = EXCLUDED.seq,
                    state = EXCLUDED.state
                """)
            // Rows the snapshot created: gone, from both user tables (counted once).
            for (table, kept, column) in [("user_ridge", "kept_user", "uid"), ("user_weights", "kept_user", "uid"),
                                          ("item_state", "kept_item", "item")] {
                let deleted = try s.execute("""
                    DELETE FROM \(unescaped: table) t USING \(unescaped: kept) k
                    WHERE t.model = \(model) AND t.version = \(version) AND k.model = t.model AND k.version = t.version
                        AND k.\(unescaped: column) = t.\(unescaped: column) AND NOT k.present
                    """)
                if table != "user_weights" { restored += deleted }
            }
            try Self.dropKept(model: model, version: version, s)
            return restored
        }
    }

    /// Deletes the version's kept copies, in the caller's transaction.
    static func dropKept(model: String, version: Int, _ s: PostgresSession) throws {
        try s.execute("DELETE FROM kept_user WHERE model = \(model) AND version = \(version)")
        try s.execute("DELETE FROM kept_item WHERE model = \(model) AND version = \(version)")
    }
}
