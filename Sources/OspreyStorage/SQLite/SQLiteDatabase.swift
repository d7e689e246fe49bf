import Foundation
import GRDB

/// One SQLite database file in WAL mode (a GRDB `DatabasePool`) whose writer commits with
/// `PRAGMA synchronous = FULL` and `secure_delete = ON`, migrated by its own migrator when opened.
///
/// GRDB's `DatabasePool` sets `synchronous = NORMAL` on its writer after `prepareDatabase`, so
/// FULL is set on the writer itself afterwards, and checked: a commit has reached the disk when
/// it returns (docs/operations.md, durability).
public final class SQLiteDatabase: Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool
    /// The data directory's lock, held as long as this database is open (nil: not locked).
    let directoryLock: DataDirectoryLock?

    /// Opens (creating if needed) the database at `path` and migrates it; `lock` is kept for as
    /// long as the database is. Read-only, it opens read-only connections and migrates nothing:
    /// the file must exist and be migrated.
    /// - Throws: ``StorageError`` `.io` when it cannot be opened, migrated or made durable, or
    ///   (read-only) is not migrated.
    /// `checkpointPages` sets the writer's `wal_autocheckpoint` (nil: SQLite's 1,000 pages).
    /// `busySeconds` is how long a write waits for another connection's (another process's)
    /// write to end before it fails with "database is locked".
    init(path: String, migrator: DatabaseMigrator, lock: DataDirectoryLock?, readOnly: Bool = false,
         checkpointPages: Int? = nil, busySeconds: Double = SQLiteDatabase.busySeconds) throws {
        self.path = path
        directoryLock = lock
        var configuration = Configuration()
        configuration.busyMode = .timeout(busySeconds)
        configuration.readonly = readOnly
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            if readOnly {
                guard try pool.read({ try migrator.hasCompletedMigrations($0) }) else {
                    throw StorageError(.io, "database \(path) needs a migration, which a read-only open does not make: "
                        + "open its data directory once with a command that writes it (osprey serve)")
                }
                return
            }
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                // Deleted content is overwritten with zeros (an erased user leaves nothing in
                // freed pages), whatever the SQLite build's default.
                try db.execute(sql: "PRAGMA secure_delete = ON")
                if let checkpointPages { try db.execute(sql: "PRAGMA wal_autocheckpoint = \(checkpointPages)") }
            }
            try migrator.migrate(pool)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.io, "cannot open database \(path): \(error)")
        }
        let mode = try synchronousMode()
        guard mode == 2 else { throw StorageError(.io, "database \(path) writer runs with synchronous=\(mode), expected FULL (2)") }
    }

    /// How long a write waits for another connection's write, by default.
    public static let busySeconds = 10.0

    /// The writer connection's `PRAGMA synchronous` (2 = FULL).
    public func synchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// The journal mode of the database (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }
}
