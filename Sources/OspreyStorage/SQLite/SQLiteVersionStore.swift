import Foundation
import GRDB
import OspreyModel

/// The catalogue in `catalog.sqlite`, a database of its own with its own migrator: tables
/// `model` (serving version, exploration policy, competition), `version` (θ as Float32 blobs and,
/// when it has one, its computed feature function's kind and bytes; prior, metadata as JSON),
/// `training_rating` and `item` (each model's items, attributes as
/// JSON; `SQLiteVersionStore+Items.swift`). Data directories from before it had its own
/// file keep it in `osprey.sqlite`; opening one moves it here (``moveCatalogue(from:)``).
public final class SQLiteVersionStore: VersionStore, Sendable {
    /// The catalogue database file inside a data directory.
    public static let fileName = "catalog.sqlite"

    /// The database the catalogue is in.
    public let database: SQLiteDatabase
    private var pool: DatabasePool { database.pool }

    /// Opens (creating and migrating, unless read-only) the catalogue at `path`; `lock` is the
    /// data directory's, kept as long as the store is.
    /// - Throws: ``StorageError`` `.io` when it cannot be opened or migrated.
    init(path: String, lock: DataDirectoryLock?, readOnly: Bool = false, busySeconds: Double = SQLiteDatabase.busySeconds) throws {
        database = try SQLiteDatabase(path: path, migrator: Self.migrator, lock: lock, readOnly: readOnly, busySeconds: busySeconds)
    }

    /// A catalogue in an already open database (tests: one written as before the catalogue had
    /// its own file).
    init(database: SQLiteDatabase) {
        self.database = database
    }

    public func models() throws -> [ModelRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT name, serving_version, created_at FROM model ORDER BY name").map {
                ModelRecord(name: $0[0], servingVersion: $0[1], createdAt: Date(timeIntervalSince1970: $0[2]))
            }
        }
    }

    public func versions(model: String) throws -> [VersionRecord] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT number, created_at, status, parent, dimension, item_count, metadata FROM version WHERE model = ? ORDER BY number",
                arguments: [model]
            ).map { row in
                VersionRecord(
                    model: model, number: row[0], createdAt: Date(timeIntervalSince1970: row[1]),
                    status: VersionRecord.Status(rawValue: row[2]) ?? .retired, parent: row[3],
                    dimension: row[4], items: row[5], metadata: try CatalogueEncoding.metadata(row[6], model: model, number: row[0]))
            }
        }
    }

    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        try pool.read { db in
            guard let row = try Row.fetchOne(
                db, sql: """
                    SELECT created_at, parent, dimension, lambda, metadata, item_ids, features, offsets, prior, computed_kind, computed
                    FROM version WHERE model = ? AND number = ?
                    """,
                arguments: [model, number])
            else { throw StorageError(.notFound, "model \(model) has no version \(number)") }
            let stored = CatalogueEncoding.Version(metadata: row[4], ids: row[5], features: row[6], offsets: row[7], prior: row[8],
                                                   computedKind: row[9], computed: row[10])
            return try CatalogueEncoding.decode(stored, model: model, number: number, createdAt: row[0], parent: row[1],
                                                dimension: row[2], lambda: Float(row[3] as Double))
        }
    }

    public func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        let stored = try CatalogueEncoding.encode(version)
        try pool.write { db in
            if try Self.exists(db, model: version.model, version: version.number) {
                throw StorageError(.conflict, "model \(version.model) already has a version \(version.number)")
            }
            try db.execute(
                sql: """
                    INSERT INTO version (model, number, created_at, status, parent, dimension, lambda, item_count,
                                         metadata, item_ids, features, offsets, prior, computed_kind, computed)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    version.model, version.number, version.createdAt.timeIntervalSince1970,
                    serve ? "serving" : "built", version.parent, version.dimension, Double(version.lambda),
                    version.features.catalog.count, stored.metadata, stored.ids, stored.features, stored.offsets, stored.prior,
                    stored.computedKind, stored.computed,
                ])
            let insertRating = try db.cachedStatement(
                sql: "INSERT INTO training_rating (model, version, uid, item, label, time) VALUES (?, ?, ?, ?, ?, ?)")
            for r in trainingRatings {
                try insertRating.execute(arguments: [version.model, version.number, r.uid, r.item, Double(r.label), r.timestamp])
            }
            if serve { try Self.serve(db, model: version.model, version: version.number) }
        }
    }

    public func setServing(model: String, version: Int) throws {
        try pool.write { db in
            guard try Self.exists(db, model: model, version: version) else {
                throw StorageError(.notFound, "model \(model) has no version \(version)")
            }
            try Self.serve(db, model: model, version: version)
        }
    }

    @discardableResult
    public func failUnservedVersions(model: String) throws -> [Int] {
        try pool.write { db in
            let numbers = try Int.fetchAll(db, sql: "SELECT number FROM version WHERE model = ? AND status = 'built'", arguments: [model])
            try db.execute(sql: "UPDATE version SET status = 'failed' WHERE model = ? AND status = 'built'", arguments: [model])
            return numbers
        }
    }

    public func deleteVersions(model: String, _ numbers: [Int]) throws {
        guard !numbers.isEmpty else { return }
        try pool.write { db in
            for v in numbers { try db.execute(sql: "DELETE FROM version WHERE model = ? AND number = ?", arguments: [model, v]) }
        }
    }

    public func initialRatings(model: String) throws -> [Rating] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT uid, item, label, time FROM training_rating WHERE model = ? ORDER BY rowid",
                             arguments: [model]).map {
                Rating(uid: $0[0], item: $0[1], label: Float($0[2] as Double), timestamp: $0[3])
            }
        }
    }

    /// An index range read on `(model, uid)`, through a reused statement and no explicit
    /// transaction (`exclude_observed` runs it per request).
    public func trainingItems(model: String, uid: String) throws -> [String] {
        try pool.unsafeRead { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT item FROM training_rating WHERE model = ? AND uid = ?"),
                                arguments: [model, uid])
        }
    }

    public func deleteTrainingRatings(model: String, uid: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM training_rating WHERE model = ? AND uid = ?", arguments: [model, uid])
            return db.changesCount
        }
    }

    public func competitions() throws -> [String: CompetitionRecord] {
        try pool.read { db in
            var out: [String: CompetitionRecord] = [:]
            let rows = try Row.fetchAll(db, sql: """
                SELECT name, challenger_version, challenger_allocation, challenger_since FROM model
                WHERE challenger_version IS NOT NULL
                """)
            for row in rows {
                out[row[0]] = CompetitionRecord(challenger: row[1], allocation: row[2], since: row[3])
            }
            return out
        }
    }

    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try pool.write { db in
            if let record, try !Self.exists(db, model: model, version: record.challenger) {
                throw StorageError(.notFound, "model \(model) has no version \(record.challenger)")
            }
            try db.execute(
                sql: "UPDATE model SET challenger_version = ?, challenger_allocation = ?, challenger_since = ? WHERE name = ?",
                arguments: [record?.challenger, record?.allocation, record?.since, model])
            guard db.changesCount > 0 else { throw StorageError(.notFound, "model \(model) does not exist") }
            try db.execute(sql: "UPDATE version SET status = 'retired' WHERE model = ? AND status = 'challenger'", arguments: [model])
            if let record {
                try db.execute(sql: "UPDATE version SET status = 'challenger' WHERE model = ? AND number = ?",
                               arguments: [model, record.challenger])
            }
        }
    }

    public func promoteChallenger(model: String, version: Int) throws {
        try pool.write { db in
            try Self.serve(db, model: model, version: version)
            try db.execute(
                sql: "UPDATE model SET challenger_version = NULL, challenger_allocation = NULL, challenger_since = NULL WHERE name = ?",
                arguments: [model])
        }
    }

    public func explorationPolicies() throws -> [String: String] {
        try pool.read { db in
            var out: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, exploration FROM model") { out[row[0]] = row[1] }
            return out
        }
    }

    public func setExplorationPolicy(model: String, policy: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE model SET exploration = ? WHERE name = ?", arguments: [policy, model])
            guard db.changesCount > 0 else { throw StorageError(.notFound, "model \(model) does not exist") }
        }
    }

    private static func exists(_ db: Database, model: String, version: Int) throws -> Bool {
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM version WHERE model = ? AND number = ?", arguments: [model, version]) ?? 0 > 0
    }

    /// Marks `version` serving (creating the model row if new) and retires the previous one.
    private static func serve(_ db: Database, model: String, version: Int) throws {
        try db.execute(sql: "UPDATE version SET status = 'retired' WHERE model = ? AND number <> ? AND status = 'serving'",
                       arguments: [model, version])
        try db.execute(sql: "UPDATE version SET status = 'serving' WHERE model = ? AND number = ?", arguments: [model, version])
        try db.execute(
            sql: """
                INSERT INTO model (name, serving_version, created_at) VALUES (?, ?, ?)
                ON CONFLICT(name) DO UPDATE SET serving_version = excluded.serving_version
                """,
            arguments: [model, version, Date().timeIntervalSince1970])
    }
}
