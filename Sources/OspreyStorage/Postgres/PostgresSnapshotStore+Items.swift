import Foundation
import NIOCore
import OspreyMath
import PostgresNIO

/// Items' online ridge states in `item_state`, one row per (model, version, item), written and
/// read like users' full states (docs/architecture.md, "Storage semantics").
extension PostgresSnapshotStore {
    /// One statement for all the rows, in one transaction: with `keepingPrevious`, its first
    /// part keeps each item's previous state in `kept_item` (or marks it absent) unless a copy is
    /// kept already, reading the rows as they were before the statement. An item named twice is
    /// written once, as its last row. O(rows · (d² + log n)).
    public func saveItemStates(model: String, version: Int, rows: [ItemStateRow], keepingPrevious: Bool) throws {
        guard !rows.isEmpty else { return }
        let last = Self.lastOfEach(rows, key: \.item)
        let items = last.map(\.item), observations = last.map(\.observations), seqs = last.map(\.seq)
        let states = last.map { ByteBuffer(bytes: $0.state) }
        try database.transaction { s in
            try s.execute("""
                WITH input AS (
                    SELECT * FROM UNNEST(\(items)::TEXT[], \(observations)::BIGINT[], \(seqs)::BIGINT[], \(states)::BYTEA[])
                        AS i (item, observations, seq, state)
                ), kept AS (
                    INSERT INTO kept_item (model, version, item, present, observations, seq, state)
                    SELECT \(model), \(version), i.item, t.item IS NOT NULL, t.observations, t.seq, t.state
                    FROM input i LEFT JOIN item_state t ON t.model = \(model) AND t.version = \(version) AND t.item = i.item
                    WHERE \(keepingPrevious)
                    ON CONFLICT (model, version, item) DO NOTHING
                )
                INSERT INTO item_state (model, version, item, observations, seq, state)
                SELECT \(model), \(version), item, observations, seq, state FROM input
                ON CONFLICT (model, version, item) DO UPDATE SET observations = EXCLUDED.observations, seq = EXCLUDED.seq,
                    state = EXCLUDED.state
                """)
        }
    }

    /// Streams the version's item states in the primary key's order: by item, bytewise (the
    /// column is `COLLATE "C"`). O(items · d²).
    public func forEachItemState(model: String, version: Int, dimension: Int, _ body: (StoredItemState) throws -> Void) throws {
        try database.transaction { s in
            try s.forEach("""
                SELECT item, state, observations, seq FROM item_state WHERE model = \(model) AND version = \(version) ORDER BY item
                """, batch: Self.stateBatch) { row in
                try body(try Self.itemState(row, model: model, version: version, dimension: dimension))
            }
        }
    }

    /// One primary-key read, outside any explicit transaction. O(d² + log n).
    public func loadItemState(model: String, version: Int, item: String, dimension: Int) throws -> StoredItemState? {
        try database.withConnection { s in
            try s.query("""
                SELECT item, state, observations, seq FROM item_state WHERE model = \(model) AND version = \(version) AND item = \(item)
                """).first.map { try Self.itemState($0, model: model, version: version, dimension: dimension) }
        }
    }

    /// A row of `SELECT item, state, observations, seq FROM item_state` as a state of `dimension`.
    private static func itemState(_ row: PostgresRow, model: String, version: Int, dimension: Int) throws -> StoredItemState {
        let (item, state, observations, seq) = try row.decode((String, Data, Int, Int64).self)
        let key = SnapshotRowKey(table: "item_state", model: model, version: version, uid: item, keyName: "item")
        return StoredItemState(item: item, ridge: try key.ridgeState(state, dimension: dimension), observations: observations, seq: seq)
    }
}
