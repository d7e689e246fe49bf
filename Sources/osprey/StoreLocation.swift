import ArgumentParser
import Logging
import OspreyStorage

/// Where a command keeps its stores: a data directory (`--data-dir`, SQLite, the embedded
/// default) or a PostgreSQL database (`--store postgres://…`, docs/operations.md "PostgreSQL").
struct StoreLocation {
    let dataDir: String
    let url: String?

    /// The `--store` option's help, shared by the commands that take it.
    static let help: ArgumentHelp = """
        A PostgreSQL database to keep the stores in instead of --data-dir: \
        postgres://USER@HOST[:PORT]/DATABASE (a password from PGPASSWORD), or ?host=DIR for a unix socket.
        """

    /// Checks `--store` is a PostgreSQL URL (the database itself is reached when opened).
    init(dataDir: String, store: String?) throws {
        self.dataDir = dataDir
        url = store
        if let store, !(store.hasPrefix("postgres://") || store.hasPrefix("postgresql://")) {
            throw ValidationError("--store takes a PostgreSQL URL (postgres://USER@HOST[:PORT]/DATABASE), not \(store)")
        }
    }

    /// The place for messages: the directory, or the URL without its password.
    var name: String {
        guard let url else { return dataDir }
        return PostgresDatabase.location(of: url) ?? "the --store database"
    }

    /// Whether the location holds a store already: a data directory with its log; a PostgreSQL
    /// database is a store once Osprey opened it, so it always counts.
    var exists: Bool { url != nil || SQLiteStores.exists(in: dataDir) }

    /// Opens the stores for a retrain worker beside `server`, which holds them (a data
    /// directory's lock, or a PostgreSQL database's writer lock).
    func openForWorker(of server: Int32, logger: Logger) throws -> Stores {
        if let url {
            return try PostgresStores(url: url, access: .unlocked, logger: logger).stores
        }
        return try SQLiteStores(directory: dataDir, access: .worker(server: server), logger: logger).stores
    }

    /// The options that name this location on a command line (for a child process).
    var arguments: [String] { url.map { ["--store", $0] } ?? ["--data-dir", dataDir] }

    /// Opens the stores. `readOnly` opens a data directory without its lock, beside a server
    /// (a PostgreSQL database is opened without its writer lock then).
    func open(readOnly: Bool = false, logger: Logger = Logger(label: "osprey.storage")) throws -> Stores {
        if let url {
            return try PostgresStores(url: url, access: readOnly ? .unlocked : .exclusive, logger: logger).stores
        }
        return try SQLiteStores(directory: dataDir, access: readOnly ? .readOnly : .exclusive, logger: logger).stores
    }
}
