import Foundation
import OspreyModel
import PostgresNIO

/// Each model's items in table `catalogue_item`: one row per `(model, id)`, its attributes as a
/// JSON object (keys sorted), its hidden flag, and its `position`, taken on the item's first
/// write and kept when the item is replaced, so the catalogue reads back in first-write order.
extension PostgresVersionStore {
    /// One `INSERT … SELECT FROM UNNEST … ON CONFLICT` per call, after dropping all but the last
    /// of a repeated id (one statement may not update a row twice).
    public func putItems(model: String, _ items: [CatalogueItem]) throws {
        guard !items.isEmpty else { return }
        let attributes = try CatalogueEncoding.attributes(items, model: model)
        // The last write of an id wins; its place is that of the first.
        var index: [String: Int] = [:]
        var ids: [String] = [], json: [String] = [], hidden: [Bool] = []
        for (item, attributes) in zip(items, attributes) {
            if let i = index[item.id] {
                json[i] = attributes
                hidden[i] = item.hidden
            } else {
                index[item.id] = ids.count
                ids.append(item.id)
                json.append(attributes)
                hidden.append(item.hidden)
            }
        }
        try database.transaction { s in
            // Writers of one model take turns, so positions are not taken twice.
            try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.catalogueItems), hashtext(\(model)))")
            let last = try s.query("SELECT COALESCE(MAX(position), 0) FROM catalogue_item WHERE model = \(model)").first
                .map { try $0.decode(Int64.self) } ?? 0
            let revision = try Self.nextRevision(s, model: model)
            // A replaced item keeps its position; the one the statement offered goes unused.
            try s.execute("""
                INSERT INTO catalogue_item (model, id, attributes, hidden, position, revision)
                SELECT \(model), id, attributes, hidden, \(last) + n, \(revision)
                FROM UNNEST(\(ids)::TEXT[], \(json)::TEXT[], \(hidden)::BOOLEAN[]) WITH ORDINALITY AS i (id, attributes, hidden, n)
                ON CONFLICT (model, id) DO UPDATE SET attributes = EXCLUDED.attributes, hidden = EXCLUDED.hidden,
                    revision = EXCLUDED.revision
                """)
        }
    }

    public func setItemHidden(model: String, item: String, hidden: Bool) throws -> Bool {
        try database.transaction { s in
            try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.catalogueItems), hashtext(\(model)))")
            let revision = try Self.nextRevision(s, model: model)
            return try s.execute("""
                UPDATE catalogue_item SET hidden = \(hidden), revision = \(revision) WHERE model = \(model) AND id = \(item)
                """) > 0
        }
    }

    public func catalogueItems(model: String) throws -> [CatalogueItem] {
        try database.transaction { s in
            let decoder = JSONDecoder()
            var out: [CatalogueItem] = []
            try s.forEach("SELECT id, attributes, hidden FROM catalogue_item WHERE model = \(model) ORDER BY position") { row in
                out.append(try Self.item(row, model: model, decoder: decoder))
            }
            return out
        }
    }

    public func catalogueItem(model: String, id: String) throws -> CatalogueItem? {
        try database.withConnection { s in
            try s.query("SELECT id, attributes, hidden FROM catalogue_item WHERE model = \(model) AND id = \(id)").first
                .map { try Self.item($0, model: model, decoder: JSONDecoder()) }
        }
    }

    /// The revision first, then the items after the one asked for: a write committed between
    /// the two reads shows among the items and is read again next time, never missed (writers
    /// of a model take turns under its advisory lock, so revisions commit in order).
    public func catalogueChanges(model: String, after revision: Int64) throws -> (items: [CatalogueItem], revision: Int64) {
        try database.transaction { s in
            let current = try s.query("SELECT COALESCE(MAX(revision), 0) FROM catalogue_item WHERE model = \(model)").first
                .map { try $0.decode(Int64.self) } ?? 0
            let decoder = JSONDecoder()
            var out: [CatalogueItem] = []
            try s.forEach("""
                SELECT id, attributes, hidden FROM catalogue_item WHERE model = \(model) AND revision > \(revision)
                ORDER BY revision, position
                """) { row in
                out.append(try Self.item(row, model: model, decoder: decoder))
            }
            return (out, current)
        }
    }

    /// The revision a write of `model`'s items takes, under the model's catalogue lock: one more
    /// than the catalogue's. O(log items).
    private static func nextRevision(_ s: PostgresSession, model: String) throws -> Int64 {
        (try s.query("SELECT COALESCE(MAX(revision), 0) FROM catalogue_item WHERE model = \(model)").first
            .map { try $0.decode(Int64.self) } ?? 0) + 1
    }

    /// The item of a row `(id, attributes, hidden)`.
    /// - Throws: ``StorageError`` `.corrupt` when its attributes are not a JSON object of values.
    private static func item(_ row: PostgresRow, model: String, decoder: JSONDecoder) throws -> CatalogueItem {
        let (id, json, hidden) = try row.decode((String, String, Bool).self)
        return try CatalogueEncoding.item(id: id, attributes: json, hidden: hidden, model: model, decoder: decoder)
    }
}
