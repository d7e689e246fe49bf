import Logging
import PostgresNIO

/// The shared store: the four stores in one PostgreSQL database, each with its own tables and
/// migrations (recorded in `osprey_schema`), over one pool of connections. `serve --store
/// postgres://…` opens it (docs/operations.md, "PostgreSQL"); SQLite stays the embedded default.
public struct PostgresStores: Sendable {
    public let database: PostgresDatabase
    public let log: PostgresObservationLog
    public let versions: PostgresVersionStore
    public let snapshots: PostgresSnapshotStore
    public let decisions: PostgresDecisionStore

    /// The four as the engine takes them.
    public var stores: Stores { Stores(log: log, versions: versions, snapshots: snapshots, decisions: decisions) }

    /// How a process opens the database, as for a data directory (``SQLiteStores/Access``).
    public enum Access: Sendable {
        /// Reads and writes, holding the database's writer lock (a session advisory lock) for as
        /// long as the stores are open: another exclusive opener fails at once.
        case exclusive
        /// Reads and writes beside other cluster nodes, holding the writer's lock shared: nodes
        /// of a cluster open the database together, and an exclusive opener (a lone `serve`, an
        /// offline `retrain`) fails at once while any of them runs, as they do while it runs.
        case shared
        /// Reads and writes without the lock: tests that act out a restart in one process.
        case unlocked
    }

    /// Opens the stores in the database at `url` (``PostgresDatabase/init(url:maxConnections:logger:)``)
    /// and creates or migrates their tables.
    /// - Throws: ``StorageError`` `.locked` (exclusive) when another process writes the database;
    ///   `.io` when it cannot be reached or migrated.
    public init(url: String, access: Access = .exclusive, maxConnections: Int = 8,
                logger: Logger = Logger(label: "osprey.storage")) throws {
        let database = try PostgresDatabase(url: url, maxConnections: maxConnections, logger: logger)
        self.database = database
        if access != .unlocked { try Self.takeWriterLock(database, shared: access == .shared) }
        log = try PostgresObservationLog(database: database)
        versions = try PostgresVersionStore(database: database)
        snapshots = try PostgresSnapshotStore(database: database)
        decisions = try PostgresDecisionStore(database: database)
        logger.debug("opened store", metadata: ["store.url": "\(database.location)", "store.access": "\(access)"])
    }

    /// Takes the writer's lock (shared by a cluster's nodes): a session-level advisory lock on a connection of its own
    /// (``PostgresDatabase/dedicatedConnection()``), so only one `serve` (or `retrain`, `train`)
    /// writes the database at a time. The database releases it when it shuts down, and the
    /// server when the process dies, a crashed process's included.
    private static func takeWriterLock(_ database: PostgresDatabase, shared: Bool) throws {
        let connection = try database.dedicatedConnection()
        let session = PostgresSession(connection: connection, database: database)
        let taken = try session.query(shared ? "SELECT pg_try_advisory_lock_shared(\(PostgresLocks.writer))"
                                             : "SELECT pg_try_advisory_lock(\(PostgresLocks.writer))")
            .first.map { try $0.decode(Bool.self) } ?? false
        guard taken else {
            throw StorageError(.locked, shared
                ? "another Osprey process (a lone serve, a train or a retrain) writes the PostgreSQL database at \(database.location); stop it before starting cluster nodes"
                : "another Osprey process writes the PostgreSQL database at \(database.location); "
                + "stop it first (only one serve, train or retrain writes a database at a time, or every node of a cluster)")
        }
    }
}
