import Foundation
import GRDB

/// One SQLite database file in WAL mode (a GRDB `DatabasePool`) whose writer commits with
/// `PRAGMA synchronous = FULL`, migrated by its own migrator when opened.
///
/// GRDB's `DatabasePool` sets `synchronous = NORMAL` on its writer after `prepareDatabase`, so
/// FULL is set on the writer itself afterwards, and checked: a commit has reached the disk when
/// it returns (docs/operations.md, durability).
public final class SQLiteDatabase: Sendable {
    /// The database file.
    public let path: String
    let pool: DatabasePool

    /// Opens (creating if needed) the database at `path` and migrates it.
    /// - Throws: ``StorageError`` `.io` when it cannot be opened, migrated or made durable.
    init(path: String, migrator: DatabaseMigrator) throws {
        self.path = path
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            try pool.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
            try migrator.migrate(pool)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.io, "cannot open database \(path): \(error)")
        }
        let mode = try synchronousMode()
        guard mode == 2 else { throw StorageError(.io, "database \(path) writer runs with synchronous=\(mode), expected FULL (2)") }
    }

    /// The writer connection's `PRAGMA synchronous` (2 = FULL).
    public func synchronousMode() throws -> Int {
        try pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// The journal mode of the database (`wal`).
    public func journalMode() throws -> String {
        try pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "" }
    }

    // MARK: Blobs

    /// Float32 values as a blob, in the machine's byte order.
    static func data(_ floats: [Float]) -> Data {
        floats.withUnsafeBytes { Data($0) }
    }

    /// The Float32 values of a blob written by ``data(_:)``.
    static func floats(_ data: Data) -> [Float] {
        var out = [Float](repeating: 0, count: data.count / MemoryLayout<Float>.size)
        out.withUnsafeMutableBytes { _ = data.copyBytes(to: $0) }
        return out
    }
}
