import Foundation
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyStorage

/// The PostgreSQL connection layer: URLs, durable commits, the pool under concurrent callers,
/// migrations run once, and the writer's lock.
struct PostgresURLTests {
    @Test func aTCPURLAndASocketURLAreRead() throws {
        let tcp = try PostgresURL("postgres://osprey:secret@db.example:6543/serving", environment: [:])
        #expect(tcp.configuration.host == "db.example" && tcp.configuration.port == 6543)
        #expect(tcp.configuration.username == "osprey" && tcp.configuration.password == "secret")
        #expect(tcp.configuration.database == "serving")
        #expect(!tcp.redacted.contains("secret") && tcp.redacted.contains("***"), "\(tcp.redacted)")

        let socket = try PostgresURL("postgresql://osprey@localhost:5433/db?host=/run/pg", environment: ["PGPASSWORD": "pw"])
        #expect(socket.configuration.unixSocketPath == "/run/pg/.s.PGSQL.5433")
        #expect(socket.configuration.password == "pw", "PGPASSWORD stands in for a password the URL leaves out")
    }

    @Test(arguments: [
        ("mysql://u@h/db", "scheme"), ("postgres://h/db", "no user"), ("postgres://u@h", "no database"),
        ("postgres://u@h/db?sslmode=require", "unknown parameter sslmode=require"),
        ("postgres://u@h/db?host=relative", "absolute path"),
    ])
    func aBadURLSaysWhatIsWrong(_ url: String, _ problem: String) {
        #expect {
            _ = try PostgresURL(url, environment: [:])
        } throws: { error in
            "\(error)".contains(problem) && "\(error)".contains("postgres://USER")
        }
    }
}

@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "no PostgreSQL server"))
struct PostgresDatabaseTests {
    @Test func everyConnectionCommitsDurably() throws {
        let database = try PostgresDatabase(url: try PostgresTestServer.freshDatabase(), maxConnections: 3)
        // Three connections at once, each checked for synchronous_commit = on.
        let settings = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: 6) { _ in
            let value = try? database.withConnection { s in
                try s.execute("SELECT pg_sleep(0.05)")
                return try s.query("SHOW synchronous_commit").first.map { try $0.decode(String.self) }
            }
            settings.withLock { $0.append((value ?? nil) ?? "failed") }
        }
        #expect(settings.withLock { $0 } == Array(repeating: "on", count: 6))
    }

    /// More callers than connections: each waits for a free one, none fails, and the pool never
    /// opens more than its limit (the server counts the sessions).
    @Test func thePoolHoldsItsLimitUnderConcurrentCallers() throws {
        let url = try PostgresTestServer.freshDatabase()
        let database = try PostgresDatabase(url: url, maxConnections: 2)
        let name = try #require(URLComponents(string: url)?.path.dropFirst().description)
        let peak = Mutex(0), failures = Mutex(0)
        // Eight threads at once (concurrentPerform would run only as many as there are cores).
        let done = DispatchGroup()
        for _ in 0..<8 {
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                do {
                    try database.withConnection { s in
                        try s.execute("SELECT pg_sleep(0.1)")
                        let count = try s.query("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = \(name)").first
                            .map { try $0.decode(Int.self) } ?? 0
                        peak.withLock { $0 = max($0, count) }
                    }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
        done.wait()
        #expect(failures.withLock { $0 } == 0)
        #expect(peak.withLock { $0 } == 2, "two connections of the pool at once, never more")
    }

    @Test func aFailedTransactionLeavesNothingAndTheConnectionServesOn() throws {
        let database = try PostgresDatabase(url: try PostgresTestServer.freshDatabase(), maxConnections: 1)
        try database.execute(administration: "CREATE TABLE t (k INTEGER PRIMARY KEY)")
        #expect(throws: StorageError.self) {
            try database.transaction { s in
                try s.execute("INSERT INTO t (k) VALUES (1)")
                try s.execute("INSERT INTO t (k) VALUES (1)")
            }
        }
        let count = try database.withConnection { s in try s.query("SELECT COUNT(*) FROM t").first.map { try $0.decode(Int.self) } }
        #expect(count == 0, "the first insert was rolled back with the second")
    }

    @Test func aUniqueViolationIsAConflictNamingTheServersMessage() throws {
        let database = try PostgresDatabase(url: try PostgresTestServer.freshDatabase())
        try database.execute(administration: "CREATE TABLE t (k INTEGER PRIMARY KEY)")
        try database.execute(administration: "INSERT INTO t (k) VALUES (1)")
        #expect {
            try database.withConnection { s in try s.execute("INSERT INTO t (k) VALUES (1)") }
        } throws: { error in
            (error as? StorageError)?.code == .conflict && "\(error)".contains("duplicate key")
        }
    }

    @Test func migrationsRunOnceInOrder() throws {
        let url = try PostgresTestServer.freshDatabase()
        let first = try PostgresDatabase(url: url)
        try first.migrate(store: "test", ["CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1)"])
        // A second opener, and a later release with one more migration.
        let second = try PostgresDatabase(url: url)
        try second.migrate(store: "test", ["CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1)", "INSERT INTO a VALUES (2)"])
        try second.migrate(store: "test", ["CREATE TABLE a (x INTEGER);\nINSERT INTO a VALUES (1)", "INSERT INTO a VALUES (2)"])
        let rows = try second.withConnection { s in try s.query("SELECT x FROM a ORDER BY x").map { try $0.decode(Int.self) } }
        #expect(rows == [1, 2])
    }

    @Test func oneWriterAtATime() throws {
        let url = try PostgresTestServer.freshDatabase()
        do {
            let writer = try PostgresStores(url: url)
            withExtendedLifetime(writer) {
                #expect {
                    _ = try PostgresStores(url: url)
                } throws: { error in
                    (error as? StorageError)?.code == .locked && "\(error)".contains("another Osprey process writes")
                }
                #expect(throws: Never.self) { _ = try PostgresStores(url: url, access: .unlocked) }
            }
        }
        // The writer's connections closed with it, so the lock is free again.
        _ = try PostgresStores(url: url)
    }

    @Test func anUnreachableServerIsAnIOError() {
        #expect {
            _ = try PostgresDatabase(url: "postgres://osprey@localhost:1/none?host=/nonexistent")
        } throws: { error in
            (error as? StorageError)?.code == .io && "\(error)".contains("cannot connect to PostgreSQL")
        }
    }
}
