import Foundation
import GRDB
import OspreyMath

/// Items' online ridge states in `item_state`, one row per (model, version, item), written and
/// read like users' full states (docs/architecture.md, "Storage semantics").
extension SQLiteSnapshotStore {
    public func saveItemStates(model: String, version: Int, rows: [ItemStateRow], keepingPrevious: Bool) throws {
        guard !rows.isEmpty else { return }
        try pool.write { db in
            // An upsert, so a row is updated where it is (see `insert(_:model:version:keepingPrevious:_:)`).
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO item_state (model, version, item, observations, seq, state) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (model, version, item) DO UPDATE SET observations = excluded.observations, seq = excluded.seq,
                    state = excluded.state
                """)
            for r in rows {
                if keepingPrevious { try Self.keepItem(model: model, version: version, item: r.item, db) }
                try upsert.execute(arguments: [model, version, r.item, r.observations, r.seq, Data(r.state)])
            }
        }
    }

    public func forEachItemState(model: String, version: Int, dimension: Int, _ body: (StoredItemState) throws -> Void) throws {
        try pool.read { db in
            // In the order of the unique index (model, version, item): by item, bytewise.
            let rows = try Row.fetchCursor(
                db, sql: "SELECT item, state, observations, seq FROM item_state WHERE model = ? AND version = ? ORDER BY item",
                arguments: [model, version])
            while let row = try rows.next() { try body(try Self.itemState(row, model: model, version: version, dimension: dimension)) }
        }
    }

    public func loadItemState(model: String, version: Int, item: String, dimension: Int) throws -> StoredItemState? {
        try pool.read { db in
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT item, state, observations, seq FROM item_state WHERE model = ? AND version = ? AND item = ?"),
                arguments: [model, version, item])
            return try row.map { try Self.itemState($0, model: model, version: version, dimension: dimension) }
        }
    }

    /// A row of `SELECT item, state, observations, seq FROM item_state` as a state of `dimension`.
    private static func itemState(_ row: Row, model: String, version: Int, dimension: Int) throws -> StoredItemState {
        let item: String = row[0]
        let key = SnapshotRowKey(table: "item_state", model: model, version: version, uid: item, keyName: "item")
        return StoredItemState(item: item, ridge: try ridgeState(row[1], key, dimension: dimension), observations: row[2], seq: row[3])
    }
}
