import Foundation
import Logging

/// The embedded store: the four stores in SQLite databases (WAL, through GRDB) inside one data
/// directory. `osprey.sqlite` holds the observation log and the catalogue, `snapshots.sqlite`
/// the user weights, `decisions.sqlite` the decision log; each file has its own writer, so a
/// snapshot's or the decision log's writes never hold up an observation's commit.
public struct SQLiteStores: Sendable {
    /// The log and catalogue database file inside a data directory.
    public static let fileName = "osprey.sqlite"

    public let log: SQLiteObservationLog
    public let versions: SQLiteVersionStore
    public let snapshots: SQLiteSnapshotStore
    public let decisions: SQLiteDecisionStore

    /// The log and catalogue database's path.
    public var path: String { log.database.path }

    /// The four as the engine takes them.
    public var stores: Stores { Stores(log: log, versions: versions, snapshots: snapshots, decisions: decisions) }

    /// Opens (creating if needed) the stores in data directory `directory` and migrates them.
    /// - Throws: ``StorageError`` `.io` when the directory or a database cannot be opened.
    public init(directory: String, logger: Logger = Logger(label: "osprey.storage")) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.io, "cannot create data directory \(directory): \(error.localizedDescription)")
        }
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let main = try SQLiteDatabase(path: file(Self.fileName), migrator: SQLiteObservationLog.migrator)
        log = SQLiteObservationLog(database: main)
        versions = SQLiteVersionStore(database: main)
        snapshots = try SQLiteSnapshotStore(path: file(SQLiteSnapshotStore.fileName), log: log)
        decisions = try SQLiteDecisionStore(path: file(SQLiteDecisionStore.fileName))
        logger.debug("opened store", metadata: ["store.path": "\(main.path)"])
    }

    /// True when a data directory already holds a store.
    public static func exists(in directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(fileName))
    }
}
