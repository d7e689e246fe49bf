import GRDB

extension SQLiteVersionStore {
    /// The catalogue's schema in `catalog.sqlite`, one migration per change. A shipped migration
    /// is never edited (docs/architecture.md, "Storage semantics").
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        // The tables as they stood when the catalogue left `osprey.sqlite` (where the log's
        // migrations "v1", "v2-exploration", "v3-competition" and "observation_by_user" built
        // them), so ``moveCatalogue(from:)`` copies them column for column.
        migrator.registerMigration("catalog-v1") { db in
            try db.execute(sql: """
                CREATE TABLE model (
                    name TEXT PRIMARY KEY NOT NULL,
                    serving_version INTEGER NOT NULL,
                    created_at REAL NOT NULL,
                    exploration TEXT NOT NULL DEFAULT 'greedy',
                    challenger_version INTEGER,
                    challenger_allocation TEXT,
                    challenger_since REAL
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
                CREATE TABLE training_rating (
                    model TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    uid TEXT NOT NULL,
                    item TEXT NOT NULL,
                    label REAL NOT NULL,
                    time REAL NOT NULL
                );
                CREATE INDEX training_rating_model ON training_rating (model, version);
                CREATE INDEX training_rating_model_uid ON training_rating (model, uid);
                """)
        }
        // Each model's items; `position` is taken on an item's first write and kept when it is
        // replaced (the catalogue's order). Not in ``tables``: the old database never had it.
        migrator.registerMigration("catalog-v2-items") { db in
            try db.execute(sql: """
                CREATE TABLE item (
                    model TEXT NOT NULL,
                    id TEXT NOT NULL,
                    attributes TEXT NOT NULL, -- a JSON object, keys sorted
                    hidden INTEGER NOT NULL DEFAULT 0,
                    position INTEGER NOT NULL,
                    PRIMARY KEY (model, id)
                );
                CREATE INDEX item_model_position ON item (model, position);
                """)
        }
        // θ's computed part: its kind (``ComputedFeatureKinds``) and its bytes; NULL for a
        // version without one.
        migrator.registerMigration("catalog-v3-computed-features") { db in
            try db.execute(sql: """
                ALTER TABLE version ADD COLUMN computed_kind TEXT;
                ALTER TABLE version ADD COLUMN computed BLOB;
                """)
        }
        // Each item's last write's revision (``VersionStore/catalogueChanges(model:after:)``):
        // items written before it carry 0.
        migrator.registerMigration("catalog-v4-item-revision") { db in
            try db.execute(sql: """
                ALTER TABLE item ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
                CREATE INDEX item_model_revision ON item (model, revision);
                """)
        }
        return migrator
    }

    /// The catalogue's tables as they stood in `osprey.sqlite`, in copy order (`item` came later,
    /// so it is never moved).
    static let tables: [(name: String, columns: String)] = [
        ("model", "name, serving_version, created_at, exploration, challenger_version, challenger_allocation, challenger_since"),
        ("version", "model, number, created_at, status, parent, dimension, lambda, item_count, metadata, item_ids, features, offsets, prior"),
        ("training_rating", "model, version, uid, item, label, time"),
    ]

    /// Moves the catalogue out of `log`'s database, where data directories written before it had
    /// a file of its own keep it (and where the log's first, shipped migration still creates
    /// empty catalogue tables). Crash-safe in two commits: the rows are copied into this
    /// database, unless it already holds a catalogue (a move that stopped after its copy); then
    /// the tables are dropped from `log`'s. Returns the number of models moved. O(catalogue).
    /// - Throws: ``StorageError`` `.io` when either database cannot be read or written.
    @discardableResult
    func moveCatalogue(from log: SQLiteDatabase) throws -> Int {
        do {
            let left = try log.pool.read { db in try Self.tables.filter { try db.tableExists($0.name) }.map(\.name) }
            guard !left.isEmpty else { return 0 }
            var moved = 0
            let empty = try database.pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM model") ?? 0 } == 0
            if empty, left.count == Self.tables.count {
                moved = try database.pool.writeWithoutTransaction { db -> Int in
                    try db.execute(sql: "ATTACH DATABASE ? AS legacy", arguments: [log.path])
                    defer { try? db.execute(sql: "DETACH DATABASE legacy") }
                    try db.inTransaction {
                        for table in Self.tables {
                            try db.execute(sql: "INSERT INTO main.\(table.name) (\(table.columns)) SELECT \(table.columns) FROM legacy.\(table.name)")
                        }
                        return .commit
                    }
                    return try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM main.model") ?? 0
                }
            }
            try log.pool.write { db in
                for table in Self.tables.reversed() { try db.execute(sql: "DROP TABLE IF EXISTS \(table.name)") }
            }
            return moved
        } catch {
            throw StorageError(.io, "cannot move the catalogue from \(log.path) to \(database.path): \(error)")
        }
    }
}
