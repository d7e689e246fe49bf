import Foundation
import Logging

/// The embedded store: the four stores in SQLite databases (WAL, through GRDB) inside one data
/// directory, each in its own file with its own migrator and writer: `osprey.sqlite` the
/// observation log, `catalog.sqlite` the catalogue, `snapshots.sqlite` the user weights,
/// `decisions.sqlite` the decision log. So a snapshot's, a retrain's or the decision log's
/// writes never hold up an observation's commit. Opened to
/// write, it holds the directory's lock (`osprey.lock`, ``DataDirectoryLock``) while any of its
/// stores is alive, so only one process writes a data directory at a time.
public struct SQLiteStores: Sendable {
    /// The log's database file inside a data directory (its presence marks a store).
    public static let fileName = "osprey.sqlite"

    public let log: SQLiteObservationLog
    public let versions: SQLiteVersionStore
    public let snapshots: SQLiteSnapshotStore
    public let decisions: SQLiteDecisionStore

    /// The log database's path.
    public var path: String { log.database.path }

    /// The four as the engine takes them.
    public var stores: Stores { Stores(log: log, versions: versions, snapshots: snapshots, decisions: decisions) }

    /// How a process opens a data directory (docs/operations.md, "Where the data lives").
    public enum Access: Sendable, Equatable {
        /// Reads and writes, holding the directory's ``DataDirectoryLock`` for as long as any of
        /// the four stores is alive: another exclusive opener fails at once. What every command
        /// that writes a data directory uses (`serve`, `retrain`, `train`).
        case exclusive
        /// Reads only, without the lock, so it works beside a process that holds it (SQLite's
        /// WAL readers see whole commits and never block its writers); migrates nothing. For
        /// commands that only read (`models`, `evaluate-policy`).
        case readOnly
        /// Reads and writes without the lock: for tests that open one directory several times
        /// in one process to act out a restart. Never for two processes.
        case unlocked
        /// Reads and writes without the lock, beside the process `server` that holds it: a
        /// retrain worker that process started (`osprey retrain-worker`), which writes only the
        /// new version's rows. Refused unless `server` holds the lock.
        case worker(server: Int32)
    }

    /// Opens the stores in data directory `directory` and, unless read-only, creates what is
    /// missing and migrates them.
    /// - Throws: ``StorageError`` `.locked` (exclusive) when another process holds the
    ///   directory, or (worker) when its server does not; `.io` when the directory or a
    ///   database cannot be opened (read-only: a database is missing or needs a migration).
    public init(directory: String, access: Access = .exclusive, logger: Logger = Logger(label: "osprey.storage")) throws {
        if access != .readOnly {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StorageError(.io, "cannot create data directory \(directory): \(error.localizedDescription)")
            }
        }
        // Taken before any database is opened: opening migrates, which writes.
        let lock = access == .exclusive ? try DataDirectoryLock(directory: directory) : nil
        if case .worker(let server) = access, DataDirectoryLock.currentHolder(directory: directory) != server {
            throw StorageError(.locked, "data directory \(directory) is not held by process \(server): a retrain worker writes only beside the server that started it")
        }
        let readOnly = access == .readOnly
        // A retrain worker writes the version and snapshot databases beside its server, whose
        // snapshots hold the write lock for seconds at a time: it waits longer than a server's
        // request would (it runs in the background, and a failed write fails the retrain).
        var busySeconds = SQLiteDatabase.busySeconds
        if case .worker = access { busySeconds = Self.workerBusySeconds }
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        let main = try SQLiteDatabase(path: file(Self.fileName), migrator: SQLiteObservationLog.migrator, lock: lock, readOnly: readOnly)
        log = SQLiteObservationLog(database: main)
        versions = try SQLiteVersionStore(path: file(SQLiteVersionStore.fileName), lock: lock, readOnly: readOnly, busySeconds: busySeconds)
        if !readOnly {
            let moved = try versions.moveCatalogue(from: main)
            if moved > 0 {
                logger.notice("moved the catalogue to its own database", metadata: [
                    "store.path": "\(versions.database.path)", "models": "\(moved)",
                ])
            }
        }
        snapshots = try SQLiteSnapshotStore(path: file(SQLiteSnapshotStore.fileName), log: log, lock: lock, readOnly: readOnly,
                                            busySeconds: busySeconds)
        decisions = try SQLiteDecisionStore(path: file(SQLiteDecisionStore.fileName), lock: lock, readOnly: readOnly)
        logger.debug("opened store", metadata: ["store.path": "\(main.path)", "store.access": "\(access)"])
    }

    /// How long a retrain worker's write waits for the server's.
    static let workerBusySeconds = 120.0

    /// True when a data directory already holds a store.
    public static func exists(in directory: String) -> Bool {
        FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent(fileName))
    }
}
