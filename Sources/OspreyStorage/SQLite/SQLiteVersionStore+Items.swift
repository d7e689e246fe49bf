import Foundation
import GRDB
import OspreyModel

/// Each model's items in table `item` (migration "catalog-v2-items"): one row per `(model, id)`,
/// its attributes as a JSON object (keys sorted), its hidden flag, and its `position`, taken on
/// the item's first write and kept when the item is replaced, so the catalogue reads back in
/// first-write order (an explicit column, not the rowid, which a `VACUUM` may renumber).
extension SQLiteVersionStore {
    public func putItems(model: String, _ items: [CatalogueItem]) throws {
        guard !items.isEmpty else { return }
        let rows = zip(items, try CatalogueEncoding.attributes(items, model: model)).map { (id: $0.id, attributes: $1, hidden: $0.hidden) }
        try database.pool.write { db in
            var position = try Int64.fetchOne(db, sql: "SELECT MAX(position) FROM item WHERE model = ?", arguments: [model]) ?? 0
            let revision = try Self.nextRevision(db, model: model)
            // A replaced item keeps its position; the one the statement offered goes unused.
            let upsert = try db.cachedStatement(sql: """
                INSERT INTO item (model, id, attributes, hidden, position, revision) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(model, id) DO UPDATE SET attributes = excluded.attributes, hidden = excluded.hidden,
                    revision = excluded.revision
                """)
            for row in rows {
                position += 1
                try upsert.execute(arguments: [model, row.id, row.attributes, row.hidden ? 1 : 0, position, revision])
            }
        }
    }

    public func setItemHidden(model: String, item: String, hidden: Bool) throws -> Bool {
        try database.pool.write { db in
            try db.execute(sql: "UPDATE item SET hidden = ?, revision = ? WHERE model = ? AND id = ?",
                           arguments: [hidden ? 1 : 0, try Self.nextRevision(db, model: model), model, item])
            return db.changesCount > 0
        }
    }

    public func catalogueItems(model: String) throws -> [CatalogueItem] {
        try database.pool.read { db in
            let decoder = JSONDecoder()
            return try Row.fetchAll(db, sql: "SELECT id, attributes, hidden FROM item WHERE model = ? ORDER BY position",
                                    arguments: [model]).map { try Self.item($0, model: model, decoder: decoder) }
        }
    }

    public func catalogueItem(model: String, id: String) throws -> CatalogueItem? {
        try database.pool.read { db in
            try Row.fetchOne(db, sql: "SELECT id, attributes, hidden FROM item WHERE model = ? AND id = ?", arguments: [model, id])
                .map { try Self.item($0, model: model, decoder: JSONDecoder()) }
        }
    }

    public func catalogueChanges(model: String, after revision: Int64) throws -> (items: [CatalogueItem], revision: Int64) {
        // One read transaction: the items and the revision are of one snapshot.
        try database.pool.read { db in
            let decoder = JSONDecoder()
            let items = try Row.fetchAll(db, sql: "SELECT id, attributes, hidden FROM item WHERE model = ? AND revision > ? ORDER BY revision, position",
                                         arguments: [model, revision]).map { try Self.item($0, model: model, decoder: decoder) }
            return (items, try Int64.fetchOne(db, sql: "SELECT MAX(revision) FROM item WHERE model = ?", arguments: [model]) ?? 0)
        }
    }

    /// The revision a write of `model`'s items takes: one more than the catalogue's. O(log items).
    private static func nextRevision(_ db: Database, model: String) throws -> Int64 {
        (try Int64.fetchOne(db, sql: "SELECT MAX(revision) FROM item WHERE model = ?", arguments: [model]) ?? 0) + 1
    }

    /// The item of a row `(id, attributes, hidden)`.
    /// - Throws: ``StorageError`` `.corrupt` when its attributes are not a JSON object of values.
    private static func item(_ row: Row, model: String, decoder: JSONDecoder) throws -> CatalogueItem {
        try CatalogueEncoding.item(id: row[0], attributes: row[1], hidden: (row[2] as Int) != 0, model: model, decoder: decoder)
    }
}
