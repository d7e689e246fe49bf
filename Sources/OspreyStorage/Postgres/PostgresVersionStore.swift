import Foundation
import OspreyModel
import PostgresNIO

/// The catalogue in PostgreSQL, the twin of ``SQLiteVersionStore``: tables `model` (serving
/// version, exploration policy, competition), `version` (its parts encoded as
/// ``CatalogueEncoding`` says, in BYTEA and TEXT columns), `training_rating` (in their original
/// order: by version, then `position` within it) and `catalogue_item` (each model's items;
/// `PostgresVersionStore+Items.swift`). Each method is one transaction.
public final class PostgresVersionStore: VersionStore, Sendable {
    /// The database the catalogue is in.
    public let database: PostgresDatabase

    /// The training ratings one `INSERT` writes at most.
    static let chunk = 50_000

    /// The catalogue's tables, one migration per change; a shipped one is never edited.
    static let migrations = [
        """
        CREATE TABLE model (
            name TEXT PRIMARY KEY,
            serving_version INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            exploration TEXT NOT NULL DEFAULT 'greedy',
            challenger_version INTEGER,
            challenger_allocation TEXT,
            challenger_since DOUBLE PRECISION
        );
        CREATE TABLE version (
            model TEXT NOT NULL,
            number INTEGER NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            parent INTEGER,
            dimension INTEGER NOT NULL,
            lambda REAL NOT NULL,
            item_count INTEGER NOT NULL,
            metadata TEXT NOT NULL,
            item_ids BYTEA NOT NULL,
            features BYTEA NOT NULL,
            offsets BYTEA NOT NULL,
            prior BYTEA NOT NULL,
            computed_kind TEXT,
            computed BYTEA,
            PRIMARY KEY (model, number)
        );
        CREATE TABLE training_rating (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            position BIGINT NOT NULL,
            uid TEXT NOT NULL,
            item TEXT NOT NULL,
            label REAL NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (model, version, position)
        );
        CREATE INDEX training_rating_model_uid ON training_rating (model, uid);
        CREATE TABLE catalogue_item (
            model TEXT NOT NULL,
            id TEXT NOT NULL,
            attributes TEXT NOT NULL,
            hidden BOOLEAN NOT NULL DEFAULT FALSE,
            position BIGINT NOT NULL,
            PRIMARY KEY (model, id)
        );
        CREATE INDEX catalogue_item_model_position ON catalogue_item (model, position);
        """,
        // Each item's last write's revision (``VersionStore/catalogueChanges(model:after:)``).
        """
        ALTER TABLE catalogue_item ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
        CREATE INDEX catalogue_item_model_revision ON catalogue_item (model, revision);
        """,
    ]

    /// Opens the catalogue in `database`, creating or migrating its tables.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "versions", Self.migrations)
    }

    public func models() throws -> [ModelRecord] {
        try database.withConnection { s in
            try s.query("SELECT name, serving_version, created_at FROM model ORDER BY name").map { row in
                let (name, serving, created) = try row.decode((String, Int, Double).self)
                return ModelRecord(name: name, servingVersion: serving, createdAt: Date(timeIntervalSince1970: created))
            }
        }
    }

    public func versions(model: String) throws -> [VersionRecord] {
        try database.withConnection { s in
            try s.query("""
                SELECT number, created_at, status, parent, dimension, item_count, metadata FROM version
                WHERE model = \(model) ORDER BY number
                """).map { row in
                let (number, created, status, parent, dimension, items, json) = try row.decode((Int, Double, String, Int?, Int, Int, String).self)
                return VersionRecord(
                    model: model, number: number, createdAt: Date(timeIntervalSince1970: created),
                    status: VersionRecord.Status(rawValue: status) ?? .retired, parent: parent, dimension: dimension, items: items,
                    metadata: try CatalogueEncoding.metadata(json, model: model, number: number))
            }
        }
    }

    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        let row = try database.withConnection { s in
            try s.query("""
                SELECT created_at, parent, dimension, lambda, metadata, item_ids, features, offsets, prior, computed_kind, computed
                FROM version WHERE model = \(model) AND number = \(number)
                """).first
        }
        guard let row else { throw StorageError(.notFound, "model \(model) has no version \(number)") }
        let stored: CatalogueEncoding.Version, created: Double, parent: Int?, dimension: Int, lambda: Float
        do {
            let (c, p, d, l, metadata, ids, features, offsets, prior, kind, computed) =
                try row.decode((Double, Int?, Int, Float, String, Data, Data, Data, Data, String?, Data?).self)
            (created, parent, dimension, lambda) = (c, p, d, l)
            stored = CatalogueEncoding.Version(metadata: metadata, ids: ids, features: features, offsets: offsets, prior: prior,
                                               computedKind: kind, computed: computed)
        } catch {
            throw StorageError(.corrupt, "version \(number) of \(model) is unreadable: \(error)")
        }
        return try CatalogueEncoding.decode(stored, model: model, number: number, createdAt: created, parent: parent,
                                            dimension: dimension, lambda: lambda)
    }

    /// Writes the training ratings ``chunk`` at a time, one `INSERT … SELECT FROM UNNEST` each.
    /// O(ratings).
    public func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        let stored = try CatalogueEncoding.encode(version)
        try database.transaction { s in
            if try Self.exists(s, model: version.model, version: version.number) {
                throw StorageError(.conflict, "model \(version.model) already has a version \(version.number)")
            }
            // One taken since the check violates the primary key: a conflict too.
            try s.execute("""
                INSERT INTO version (model, number, created_at, status, parent, dimension, lambda, item_count,
                                     metadata, item_ids, features, offsets, prior, computed_kind, computed)
                VALUES (\(version.model), \(version.number), \(version.createdAt.timeIntervalSince1970), \(serve ? "serving" : "built"),
                        \(version.parent), \(version.dimension), \(version.lambda), \(version.features.catalog.count),
                        \(stored.metadata), \(stored.ids), \(stored.features), \(stored.offsets), \(stored.prior),
                        \(stored.computedKind), \(stored.computed))
                """)
            var start = 0
            while start < trainingRatings.count {
                let part = trainingRatings[start..<min(start + Self.chunk, trainingRatings.count)]
                let uids = part.map(\.uid), items = part.map(\.item), labels = part.map(\.label), times = part.map(\.timestamp)
                try s.execute("""
                    INSERT INTO training_rating (model, version, position, uid, item, label, time)
                    SELECT \(version.model), \(version.number), \(Int64(start)) + n - 1, uid, item, label, time
                    FROM UNNEST(\(uids)::TEXT[], \(items)::TEXT[], \(labels)::REAL[], \(times)::DOUBLE PRECISION[])
                         WITH ORDINALITY AS r (uid, item, label, time, n)
                    """)
                start += part.count
            }
            if serve { try Self.serve(s, model: version.model, version: version.number) }
        }
    }

    public func setServing(model: String, version: Int) throws {
        try database.transaction { s in
            guard try Self.exists(s, model: model, version: version) else {
                throw StorageError(.notFound, "model \(model) has no version \(version)")
            }
            try Self.serve(s, model: model, version: version)
        }
    }

    @discardableResult
    public func failUnservedVersions(model: String) throws -> [Int] {
        try database.transaction { s in
            try s.query("UPDATE version SET status = 'failed' WHERE model = \(model) AND status = 'built' RETURNING number")
                .map { try $0.decode(Int.self) }.sorted()
        }
    }

    public func deleteVersions(model: String, _ numbers: [Int]) throws {
        guard !numbers.isEmpty else { return }
        let list = numbers.map(Int64.init)
        try database.withConnection { s in
            _ = try s.execute("DELETE FROM version WHERE model = \(model) AND number = ANY(\(list)::BIGINT[])")
        }
    }

    /// Reads them through a cursor, in their original order. O(ratings).
    public func initialRatings(model: String) throws -> [Rating] {
        try database.transaction { s in
            var out: [Rating] = []
            try s.forEach("SELECT uid, item, label, time FROM training_rating WHERE model = \(model) ORDER BY version, position") { row in
                let (uid, item, label, time) = try row.decode((String, String, Float, Double).self)
                out.append(Rating(uid: uid, item: item, label: label, timestamp: time))
            }
            return out
        }
    }

    public func trainingItems(model: String, uid: String) throws -> [String] {
        try database.withConnection { s in
            try s.query("SELECT item FROM training_rating WHERE model = \(model) AND uid = \(uid)").map { try $0.decode(String.self) }
        }
    }

    public func deleteTrainingRatings(model: String, uid: String) throws -> Int {
        try database.transaction { s in
            try s.execute("DELETE FROM training_rating WHERE model = \(model) AND uid = \(uid)")
        }
    }

    public func competitions() throws -> [String: CompetitionRecord] {
        try database.withConnection { s in
            var out: [String: CompetitionRecord] = [:]
            for row in try s.query("""
                SELECT name, challenger_version, challenger_allocation, challenger_since FROM model
                WHERE challenger_version IS NOT NULL
                """) {
                let (name, challenger, allocation, since) = try row.decode((String, Int, String, Double).self)
                out[name] = CompetitionRecord(challenger: challenger, allocation: allocation, since: since)
            }
            return out
        }
    }

    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try database.transaction { s in
            if let record, try !Self.exists(s, model: model, version: record.challenger) {
                throw StorageError(.notFound, "model \(model) has no version \(record.challenger)")
            }
            let changed = try s.execute("""
                UPDATE model SET challenger_version = \(record?.challenger), challenger_allocation = \(record?.allocation),
                                 challenger_since = \(record?.since)
                WHERE name = \(model)
                """)
            guard changed > 0 else { throw StorageError(.notFound, "model \(model) does not exist") }
            try s.execute("UPDATE version SET status = 'retired' WHERE model = \(model) AND status = 'challenger'")
            if let record {
                try s.execute("UPDATE version SET status = 'challenger' WHERE model = \(model) AND number = \(record.challenger)")
            }
        }
    }

    public func promoteChallenger(model: String, version: Int) throws {
        try database.transaction { s in
            try Self.serve(s, model: model, version: version)
            try s.execute("""
                UPDATE model SET challenger_version = NULL, challenger_allocation = NULL, challenger_since = NULL WHERE name = \(model)
                """)
        }
    }

    public func explorationPolicies() throws -> [String: String] {
        try database.withConnection { s in
            var out: [String: String] = [:]
            for row in try s.query("SELECT name, exploration FROM model") {
                let (name, policy) = try row.decode((String, String).self)
                out[name] = policy
            }
            return out
        }
    }

    public func setExplorationPolicy(model: String, policy: String) throws {
        try database.transaction { s in
            guard try s.execute("UPDATE model SET exploration = \(policy) WHERE name = \(model)") > 0 else {
                throw StorageError(.notFound, "model \(model) does not exist")
            }
        }
    }

    private static func exists(_ s: PostgresSession, model: String, version: Int) throws -> Bool {
        try !s.query("SELECT 1 FROM version WHERE model = \(model) AND number = \(version)").isEmpty
    }

    /// Marks `version` serving (creating the model row if new) and retires the previous one.
    private static func serve(_ s: PostgresSession, model: String, version: Int) throws {
        try s.execute("UPDATE version SET status = 'retired' WHERE model = \(model) AND number <> \(version) AND status = 'serving'")
        try s.execute("UPDATE version SET status = 'serving' WHERE model = \(model) AND number = \(version)")
        try s.execute("""
            INSERT INTO model (name, serving_version, created_at) VALUES (\(model), \(version), \(Date().timeIntervalSince1970))
            ON CONFLICT (name) DO UPDATE SET serving_version = EXCLUDED.serving_version
            """)
    }
}
