import Foundation
import Logging
import NIOCore
import NIOPosix
import PostgresNIO

/// One PostgreSQL database, reached through postgres-nio and used synchronously, as the storage
/// protocols are: a small pool of connections on event-loop threads of its own, each call
/// blocking its caller until the server answered. Every connection commits with
/// `synchronous_commit = on` (set when it opens, and checked; JIT is turned off too): a commit
/// has reached the server's disk when it returns (docs/operations.md, "PostgreSQL").
///
/// The callers are the engine's threads and the HTTP server's, SQLite's blocking reads and
/// writes stand in the same places; the answers complete on this database's own loops, never the
/// caller's, so blocking on them cannot deadlock.
public final class PostgresDatabase: @unchecked Sendable {
    /// Where the database is, for messages: the URL without its password.
    public let location: String
    let configuration: PostgresConnection.Configuration
    let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var idle: [PostgresConnection] = []
    /// Connections outside the pool (``dedicatedConnection()``), closed at ``shutdown()``.
    private var dedicated: [PostgresConnection] = []
    private var open = 0
    private var closed = false
    private var nextID = 0
    /// The most connections open at once.
    let maxConnections: Int

    /// Opens a pool on the database at `url`: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`,
    /// with `?host=/a/directory` for a unix socket in that directory (the port names the socket,
    /// as for libpq). Without a password in the URL, `PGPASSWORD` is used when set. Connects once
    /// to check the server is there and commits durably.
    /// - Throws: ``StorageError`` `.io` when the URL is not one, the server cannot be reached, or
    ///   it refuses `synchronous_commit = on`.
    public init(url: String, maxConnections: Int = 8, logger: Logger = Logger(label: "osprey.storage")) throws {
        let parsed = try PostgresURL(url)
        location = parsed.redacted
        configuration = parsed.configuration
        self.logger = logger
        self.maxConnections = max(1, maxConnections)
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            try withConnection { _ in }
        } catch {
            shutdown()
            throw error
        }
    }

    deinit { shutdown() }

    /// What a message shows of `url`: the URL without its password, or nil when it is not a
    /// PostgreSQL URL (``init(url:maxConnections:logger:)`` says what is wrong with it).
    public static func location(of url: String) -> String? {
        try? PostgresURL(url, environment: [:]).redacted
    }

    /// Closes every idle connection and stops the pool's threads; calls after it fail.
    public func shutdown() {
        condition.lock()
        let toClose = idle + dedicated, dedicated = self.dedicated
        idle = []
        self.dedicated = []
        let wasClosed = closed
        closed = true
        condition.broadcast()
        condition.unlock()
        // A session lock held on a dedicated connection is released first, and waited for: the
        // server lets go of a closed connection's locks only once its backend has exited.
        for connection in dedicated where !connection.isClosed {
            _ = try? Self.wait(connection.query("SELECT pg_advisory_unlock_all()", logger: logger))
        }
        for connection in toClose { _ = try? Self.wait(connection.close()) }
        if !wasClosed { try? group.syncShutdownGracefully() }
    }

    // MARK: Connections

    /// Runs `body` with a connection of the pool (one the pool opens when none is idle and fewer
    /// than ``maxConnections`` are open; else it waits for one). A connection that broke goes.
    @discardableResult
    func withConnection<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        let connection = try checkOut()
        defer { checkIn(connection) }
        return try body(PostgresSession(connection: connection, database: self))
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    /// A commit that fails throws ``StorageError`` `.io`; as with any networked database, a
    /// connection lost during the commit leaves its outcome unknown to the caller.
    @discardableResult
    func transaction<T>(_ body: (PostgresSession) throws -> T) throws -> T {
        try withConnection { session in
            try session.execute("BEGIN")
            do {
                let result = try body(session)
                try session.execute("COMMIT")
                return result
            } catch {
                _ = try? session.execute("ROLLBACK")
                throw error
            }
        }
    }

    private func checkOut() throws -> PostgresConnection {
        condition.lock()
        while true {
            if closed {
                condition.unlock()
                throw StorageError(.io, "the PostgreSQL store at \(location) is closed")
            }
            if let connection = idle.popLast() {
                condition.unlock()
                if connection.isClosed { release(); condition.lock(); continue }
                return connection
            }
            if open < maxConnections { break }
            condition.wait()
        }
        open += 1
        nextID += 1
        let id = nextID
        condition.unlock()
        do {
            return try connect(id: id)
        } catch {
            release()
            throw error
        }
    }

    private func checkIn(_ connection: PostgresConnection) {
        condition.lock()
        if connection.isClosed || closed {
            open -= 1
            condition.signal()
            condition.unlock()
            if !connection.isClosed { _ = try? Self.wait(connection.close()) }
            return
        }
        idle.append(connection)
        condition.signal()
        condition.unlock()
    }

    /// A connection of its own for a caller that keeps it (a session-level lock), outside the
    /// pool; it stays open until ``shutdown()``.
    func dedicatedConnection() throws -> PostgresConnection {
        condition.lock()
        nextID += 1
        let id = nextID
        condition.unlock()
        let connection = try connect(id: id)
        condition.lock()
        dedicated.append(connection)
        condition.unlock()
        return connection
    }

    /// Gives back the place of a connection that closed (or never opened).
    private func release() {
        condition.lock()
        open -= 1
        condition.signal()
        condition.unlock()
    }

    /// Opens a connection and makes its commits durable.
    private func connect(id: Int) throws -> PostgresConnection {
        let connection: PostgresConnection
        do {
            connection = try Self.wait(PostgresConnection.connect(on: group.next(), configuration: configuration, id: id, logger: logger))
        } catch {
            throw StorageError(.io, "cannot connect to PostgreSQL at \(location): \(Self.describe(error))")
        }
        do {
            let session = PostgresSession(connection: connection, database: self)
            try session.execute("SET synchronous_commit = on")
            // Osprey's statements are short; JIT compiling one (which the planner's estimates for
            // a freshly created table can trigger) cost 6 ms of a 7 ms append.
            try session.execute("SET jit = off")
            let mode = try session.query("SHOW synchronous_commit").first.map { try $0.decode(String.self) }
            guard mode == "on" else {
                throw StorageError(.io, "PostgreSQL at \(location) runs with synchronous_commit=\(mode ?? "?"), expected on")
            }
            return connection
        } catch {
            _ = try? Self.wait(connection.close())
            throw error
        }
    }

    /// Runs one SQL statement outside any transaction, without parameters: administration
    /// (the tests' `CREATE DATABASE`), never data a client sent.
    public func execute(administration sql: String) throws {
        try withConnection { try $0.execute(PostgresQuery(unsafeSQL: sql)) }
    }

    // MARK: Migrations

    /// Brings the tables of `store` up to date: runs, in order, each of `migrations` (statements
    /// separated by `;` and a line break) past the
    /// version recorded for it in `osprey_schema`, each in its own transaction with the new
    /// version. Nodes opening one database at once take turns (an advisory lock).
    func migrate(store: String, _ migrations: [String]) throws {
        try transaction { s in
            try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.migration))")
            try s.execute("CREATE TABLE IF NOT EXISTS osprey_schema (store TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        }
        for (index, sql) in migrations.enumerated() {
            try transaction { s in
                try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.migration))")
                let done = try s.query("SELECT version FROM osprey_schema WHERE store = \(store)").first
                    .map { try $0.decode(Int.self) } ?? 0
                guard done <= index else { return }
                // One statement at a time: the extended protocol takes no more.
                for statement in sql.components(separatedBy: ";\n") {
                    let trimmed = statement.trimmingCharacters(in: .whitespacesAndNewlines)
                    if !trimmed.isEmpty { try s.execute(PostgresQuery(unsafeSQL: trimmed)) }
                }
                try s.execute("""
                    INSERT INTO osprey_schema (store, version) VALUES (\(store), \(index + 1))
                    ON CONFLICT (store) DO UPDATE SET version = EXCLUDED.version
                    """)
            }
        }
    }


    // MARK: Waiting on futures

    /// Blocks until `future` completes. Unlike `EventLoopFuture.wait()`, callable from any
    /// thread that is not one of this database's loops (the futures complete there).
    static func wait<T: Sendable>(_ future: EventLoopFuture<T>) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox<T>()
        future.whenComplete { result in
            box.result = result
            done.signal()
        }
        done.wait()
        return try box.result!.get()
    }

    private final class ResultBox<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    /// A postgres-nio error with the server's message and SQLSTATE (its plain description hides
    /// them).
    static func describe(_ error: any Error) -> String {
        if let error = error as? PSQLError {
            if let message = error.serverInfo?[.message] {
                let state = error.serverInfo?[.sqlState].map { " (SQLSTATE \($0))" } ?? ""
                return message + state
            }
            return "\(error.code)" + (error.underlying.map { ": \($0)" } ?? "")
        }
        return "\(error)"
    }

    /// The SQLSTATE of a server error (say `23505`, a unique violation), or nil.
    static func sqlState(_ error: any Error) -> String? {
        (error as? PSQLError)?.serverInfo?[.sqlState]
    }
}

/// The advisory locks Osprey takes, in one place so that no two share a key (the one-key and
/// the two-key forms are key spaces of their own).
enum PostgresLocks {
    /// Migrations, one opener at a time (``PostgresDatabase/migrate(store:_:)``).
    static let migration: Int64 = 0x05B7_0001
    /// The writer's lock, held by a session for as long as the stores are open (``PostgresStores``).
    static let writer: Int64 = 0x05B7_0002
    /// Decision appends and pruning, which number decisions on from the last (``PostgresDecisionStore``).
    static let decisionAppend: Int64 = 0x05B7_0003
    /// Catalogue item writers of one model, with the model's `hashtext` as the second key
    /// (``PostgresVersionStore``).
    static let catalogueItems: Int32 = 0x05B7_0002
    /// A cluster node's name, with the name's `hashtext` as the second key, held by the node for
    /// as long as it runs (``PostgresMembership``).
    static let memberName: Int32 = 0x05B7_0003
}

/// A connection of the pool, for the length of one ``PostgresDatabase/withConnection(_:)``.
struct PostgresSession {
    let connection: PostgresConnection
    let database: PostgresDatabase

    /// Every row `query` returns.
    /// - Throws: ``StorageError`` `.io` with the server's message.
    func query(_ query: PostgresQuery) throws -> [PostgresRow] {
        try run(query) { Array(try PostgresDatabase.wait(connection.query(query, logger: database.logger)).rows) }
    }

    /// Runs a statement; returns the rows it changed (0 for one that changes none).
    @discardableResult
    func execute(_ query: PostgresQuery) throws -> Int {
        try run(query) { try PostgresDatabase.wait(connection.query(query, logger: database.logger)).metadata.rows ?? 0 }
    }

    /// Calls `body` with each row of `query`, read `batch` at a time through a cursor so that
    /// no more than a batch is held. Must run inside a transaction (a cursor lives in one); the
    /// rows are those of the query's snapshot.
    func forEach(_ query: PostgresQuery, batch: Int = 5_000, _ body: (PostgresRow) throws -> Void) throws {
        let cursor = "osprey_cursor"
        var declare = query
        declare.sql = "DECLARE \(cursor) NO SCROLL CURSOR FOR " + query.sql
        try execute(declare)
        while true {
            let rows = try self.query(PostgresQuery(unsafeSQL: "FETCH FORWARD \(batch) FROM \(cursor)"))
            for row in rows { try body(row) }
            if rows.count < batch { break }
        }
        try execute(PostgresQuery(unsafeSQL: "CLOSE \(cursor)"))
    }

    private func run<T>(_ query: PostgresQuery, _ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch let error as StorageError {
            throw error
        } catch {
            // A unique violation is a conflict (a version number taken); anything else is I/O.
            let statement = query.sql.split(separator: "\n").first.map(String.init) ?? query.sql
            let message = "PostgreSQL: \(PostgresDatabase.describe(error)), in: \(statement.prefix(120))"
            throw StorageError(PostgresDatabase.sqlState(error) == "23505" ? .conflict : .io, message)
        }
    }
}
