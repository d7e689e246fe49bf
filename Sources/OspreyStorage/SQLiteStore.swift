import Foundation
import GRDB
import Logging
import OspreyMath
import OspreyModel

/// The embedded store: SQLite databases in WAL mode (through GRDB). `osprey.sqlite` holds the
/// catalogue, the observation log and the training ratings; `snapshots.sqlite` holds the user
/// weights of each version and how far into the log they reach. Snapshots live in their own file
/// so their large writes never hold up an observation's commit (SQLite has one writer per file).
///
/// Durability: the writer runs with `PRAGMA synchronous = FULL`, so a commit has reached the disk
/// when it returns. GRDB's `DatabasePool` sets `synchronous = NORMAL` on its writer after
/// `prepareDatabase`, so FULL is set on the writer itself afterwards and checked.
public final class SQLiteStore: ObservationLog, ModelCatalog, Sendable {
    /// The database file inside a data directory.
    public static let fileName = "osprey.sqlite"
    /// The snapshot database file inside a data directory.
    public static let snapshotFileName = "snapshots.sqlite"
    /// The decision database file inside a data directory.
    public static let decisionFileName = "decisions.sqlite"

    let pool: DatabasePool
    let snapshotPool: DatabasePool
    let decisionPool: DatabasePool
    public let path: String

    /// Opens (creating if needed) the store in data directory `directory` and migrates it.
    /// - Throws: ``StorageError`` `.io` when the directory or database cannot be opened.
    public init(directory: String, logger: Logger = Logger(label: "osprey.storage")) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.io, "cannot create data directory \(directory): \(error.localizedDescription)")
        }
        path = (directory as NSString).appendingPathComponent(Self.fileName)
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let snapshotPath = (directory as NSString).appendingPathComponent(Self.snapshotFileName)
        let decisionPath = (directory as NSString).appendingPathComponent(Self.decisionFileName)
        do {
            pool = try Self.open(path, configuration, Self.migrator)
            snapshotPool = try Self.open(snapshotPath, configuration, Self.snapshotMigrator(log: pool))
            decisionPool = try Self.open(decisionPath, configuration, Self.decisionMigrator)
        } catch {
            throw StorageError(.io, "cannot open database in \(directory): \(error)")
        }
        for (file, writer) in [(path, pool), (snapshotPath, snapshotPool), (decisionPath, decisionPool)] {
            let mode = try writer.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
            guard mode == 2 else { throw StorageError(.io, "database \(file) writer runs with synchronous=\(mode), expected FULL (2)") }
        }
        logger.debug("opened store", metadata: ["store.path": "\(path)"])
    }

    /// Opens a WAL database whose writer commits with `synchronous = FULL`, and migrates it.
    private static func open(_ path: String, _ configuration: Configuration, _ migrator: DatabaseMigrator) throws -> DatabasePool {
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        try migrator.migrate(pool)
        return pool
    }

    /// The log writer connection's `PRAGMA synchronous` (2 = FULL).
    public func synchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// The journal mode of the database (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    /// True when a data directory already holds a store.
    public static func exists(in directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(fileName))
    }

    // MARK: ObservationLog

    public func append(_ observations: [Observation]) throws -> [Int64] {
        guard !observations.isEmpty else { return [] }
        return try pool.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT INTO observation (model, uid, item, label, time, event_id) VALUES (?, ?, ?, ?, ?, ?)")
            var seqs: [Int64] = []
            seqs.reserveCapacity(observations.count)
            for o in observations {
                try insert.execute(arguments: [o.model, o.uid, o.item, Double(o.label), o.time, o.eventId])
                seqs.append(db.lastInsertedRowID)
            }
            return seqs
        }
    }

    public func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, uid, item, label, time, event_id FROM observation WHERE model = ? AND seq > ? ORDER BY seq",
                arguments: [model, seq])
            while let row = try rows.next() {
                let o = Observation(model: model, uid: row[1], item: row[2], label: Float(row[3] as Double), time: row[4],
                                    eventId: row[5])
                try body(LoggedObservation(seq: row[0], observation: o))
            }
        }
    }

    /// At most `limit` of the model's logged observations with sequence above `seq`, in log
    /// order: a replay reads the log in such pages, so it holds no read open while it learns
    /// (learning a cold user reads the store). O(limit + log n).
    public func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT seq, uid, item, label, time FROM observation WHERE model = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [model, seq, limit]
            ).map { row in
                LoggedObservation(seq: row[0], observation: Observation(model: model, uid: row[1], item: row[2], label: Float(row[3] as Double), time: row[4]))
            }
        }
    }

    /// Calls `body` with user `uid`'s logged observations of `model` with sequence in `range`, in
    /// log order: what rebuilding a cold user whose earlier rebuild failed replays. The log has no
    /// index by user (it would cost every append a random B-tree leaf), so this reads every
    /// observation of the model in the range: O(log n + the range's entries). Rare: only users
    /// whose learning failed have entries to replay.
    public func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                                   _ body: (LoggedObservation) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, item, label, time, event_id FROM observation WHERE model = ? AND seq >= ? AND seq < ? AND uid = ? ORDER BY seq",
                arguments: [model, range.lowerBound, range.upperBound, uid])
            while let row = try rows.next() {
                let o = Observation(model: model, uid: uid, item: row[1], label: Float(row[2] as Double), time: row[3], eventId: row[4])
                try body(LoggedObservation(seq: row[0], observation: o))
            }
        }
    }

    /// The items user `uid` has rated (the model's training ratings) or observed (the log, as far
    /// as the snapshots have recorded it in `user_item`), with repeats: with the observations
    /// learned since the last snapshot, what `exclude_observed` leaves out. Two primary-key or
    /// index range reads, O(log n + the user's rows).
    public func ratedItems(model: String, uid: String) throws -> [String] {
        var items = try pool.unsafeRead { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT item FROM training_rating WHERE model = ? AND uid = ?"),
                                arguments: [model, uid])
        }
        items += try snapshotPool.unsafeRead { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT item FROM user_item WHERE model = ? AND uid = ?"),
                                arguments: [model, uid])
        }
        return items
    }

    public func observationCount(model: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM observation WHERE model = ?", arguments: [model]) ?? 0 }
    }

    public func lastSequence() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM observation") ?? 0 }
    }

    // MARK: ModelCatalog

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
                let json: String = row[6]
                guard let metadata = try? JSONDecoder().decode(TrainingMetadata.self, from: Data(json.utf8)) else {
                    throw StorageError(.corrupt, "metadata of \(model) v\(row[0] as Int) is unreadable")
                }
                return VersionRecord(
                    model: model, number: row[0], createdAt: Date(timeIntervalSince1970: row[1]),
                    status: VersionRecord.Status(rawValue: row[2]) ?? .retired, parent: row[3],
                    dimension: row[4], items: row[5], metadata: metadata)
            }
        }
    }

    public func createVersion(_ version: ModelVersion, users: [(uid: String, weights: UserWeights)], reflecting seq: Int64,
                              trainingRatings: [Rating], serve: Bool) throws {
        // User weights first: should the catalogue write below fail, they are orphans that the
        // next attempt at this version replaces.
        try saveInitialUsers(model: version.model, version: version.number, seq: seq) { write in
            try write(users.map { SnapshotRow(uid: $0.uid, weights: $0.weights, seq: seq) })
        }
        try insertVersion(version, trainingRatings: trainingRatings, serve: serve)
    }

    /// Stores a trained version without ever holding all its users' states: each chunk of users
    /// (``UserStates/forEachChunk(size:_:)``) is turned by `stored` into what is stored for each
    /// user (nil: the user is not stored), written to the snapshot store (reflecting the log up
    /// to `seq`) and handed to `each`; then the version is stored, its bootstrap prior the mean
    /// of the stored users' weights. Returns the version as stored. O(users · d³).
    @discardableResult
    public func createVersion(
        _ trained: Trainer.Result, reflecting seq: Int64, trainingRatings: [Rating], serve: Bool,
        stored: (_ uid: String, _ state: RidgeState) -> UserWeights? = { UserWeights(ridge: $1, bootstrapped: false) },
        each: (_ uid: String, _ weights: UserWeights) -> Void = { _, _ in }
    ) throws -> ModelVersion {
        var prior = PriorMean(dimension: trained.features.dimension)
        try saveInitialUsers(model: trained.model, version: trained.number, seq: seq) { write in
            try trained.users.forEachChunk { chunk in
                var rows: [SnapshotRow] = []
                rows.reserveCapacity(chunk.count)
                for (uid, state) in chunk {
                    guard let w = stored(uid, state) else { continue }
                    prior.add(w.ridge)
                    rows.append(SnapshotRow(uid: uid, weights: w, seq: seq))
                    each(uid, w)
                }
                try write(rows)
            }
        }
        let version = trained.version(prior: prior.mean)
        try insertVersion(version, trainingRatings: trainingRatings, serve: serve)
        return version
    }

    /// The version's catalogue row and training ratings, in one transaction; `serve` makes it
    /// the model's serving version.
    private func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        let metadata = String(decoding: try JSONEncoder().encode(version.metadata), as: UTF8.self)
        let ids = try JSONEncoder().encode(version.features.catalog.ids)
        try pool.write { db in
            if try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM version WHERE model = ? AND number = ?",
                                arguments: [version.model, version.number]) ?? 0 > 0 {
                throw StorageError(.conflict, "model \(version.model) already has a version \(version.number)")
            }
            try db.execute(
                sql: """
                    INSERT INTO version (model, number, created_at, status, parent, dimension, lambda, item_count,
                                         metadata, item_ids, features, offsets, prior)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    version.model, version.number, version.createdAt.timeIntervalSince1970,
                    serve ? "serving" : "built", version.parent, version.dimension, Double(version.lambda),
                    version.features.catalog.count, metadata, ids, Self.data(version.features.table),
                    Self.data(version.features.offsets), Self.data(version.prior),
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
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM version WHERE model = ? AND number = ?", arguments: [model, version]) ?? 0 > 0 else {
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

    public func pruneVersions(model: String, keep: Int) throws -> [Int] {
        let versions = try versions(model: model)
        guard let serving = try models().first(where: { $0.name == model })?.servingVersion else { return [] }
        let parent = versions.first { $0.number == serving }?.parent
        let challenger = try competitions()[model]?.challenger
        let newest = Set(versions.map(\.number).sorted(by: >).prefix(max(1, keep)))
        let doomed = versions.map(\.number).filter { !newest.contains($0) && $0 != serving && $0 != parent && $0 != challenger }
        guard !doomed.isEmpty else { return [] }
        // Catalogue rows first: once they are gone the version cannot be loaded, so leftover
        // weights (should the second step fail) are only unused rows.
        try pool.write { db in
            for v in doomed { try db.execute(sql: "DELETE FROM version WHERE model = ? AND number = ?", arguments: [model, v]) }
        }
        try deleteUsers(model: model, versions: doomed)
        return doomed
    }

    /// Marks `version` serving (creating the model row if new) and retires the previous one.
    static func serve(_ db: Database, model: String, version: Int) throws {
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

    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        try pool.read { db in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT created_at, parent, dimension, lambda, metadata, item_ids, features, offsets, prior FROM version WHERE model = ? AND number = ?",
                arguments: [model, number])
            else { throw StorageError(.notFound, "model \(model) has no version \(number)") }
            let dimension: Int = row[2]
            let stride = VectorKernels.paddedStride(dimension)
            let json: String = row[4]
            guard let metadata = try? JSONDecoder().decode(TrainingMetadata.self, from: Data(json.utf8)),
                  let ids = try? JSONDecoder().decode([String].self, from: row[5] as Data)
            else { throw StorageError(.corrupt, "version \(number) of \(model) is unreadable") }
            let table = Self.floats(row[6]), offsets = Self.floats(row[7]), prior = Self.floats(row[8])
            guard table.count == ids.count * stride, offsets.count == ids.count, prior.count == dimension else {
                throw StorageError(.corrupt, "version \(number) of \(model) has inconsistent sizes")
            }
            return ModelVersion(
                model: model, number: number, createdAt: Date(timeIntervalSince1970: row[0]),
                features: MaterializedFeatures(dimension: dimension, ids: ids, table: table, offsets: offsets),
                lambda: Float(row[3] as Double), prior: prior, metadata: metadata, parent: row[1])
        }
    }

    /// Calls `body` with the (uid, item) of every rating the model was first trained on and every
    /// observation of the model in the log: everything any of its versions has learned from.
    /// O(ratings + observations).
    public func forEachRating(model: String, _ body: (String, String) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: """
                    SELECT uid, item FROM training_rating WHERE model = ?
                    UNION ALL SELECT uid, item FROM observation WHERE model = ?
                    """,
                arguments: [model, model])
            while let row = try rows.next() { try body(row[0], row[1]) }
        }
    }

    /// The ratings the model was first trained on (stored with its first version), in their
    /// original order. Later versions are trained on these plus the log.
    public func initialRatings(model: String) throws -> [Rating] {
        try pool.read { db in
            try Row.fetchAll(db, sql: "SELECT uid, item, label, time FROM training_rating WHERE model = ? ORDER BY rowid",
                             arguments: [model]).map {
                Rating(uid: $0[0], item: $0[1], label: Float($0[2] as Double), timestamp: $0[3])
            }
        }
    }

    // MARK: Encoding

    static func data(_ floats: [Float]) -> Data {
        floats.withUnsafeBytes { Data($0) }
    }

    static func floats(_ data: Data) -> [Float] {
        var out = [Float](repeating: 0, count: data.count / MemoryLayout<Float>.size)
        out.withUnsafeMutableBytes { _ = data.copyBytes(to: $0) }
        return out
    }
}
