import Foundation
import OspreyStorage

/// The PostgreSQL server the tests' `postgres` backend runs on: the one at
/// `OSPREY_TEST_POSTGRES_URL` when set (a database the tests may create databases in), else a
/// throwaway server that `scripts/postgres-server.sh` starts in a temporary directory the first
/// time a test asks, stopped once the test process is gone. Each test gets a fresh database of its
/// own (``freshDatabase()``).
///
/// Without PostgreSQL's server binaries the backend is left out and ``unavailable`` says why;
/// with `OSPREY_REQUIRE_POSTGRES=1` (CI) that is a failure instead. `scripts/install-test-tools.sh`
/// installs them.
public enum PostgresTestServer {
    /// Why the tests run without the `postgres` backend, or nil when they run with it.
    public static var unavailable: String? {
        if case .failure(let reason) = server { return reason.message }
        return nil
    }

    /// The URL of a new, empty database on the test server.
    public static func freshDatabase() throws -> String {
        let admin = try server.get()
        let name = "osprey_test_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16)
        try admin.createDatabase(String(name))
        return admin.url(database: String(name))
    }

    struct Unavailable: Error {
        let message: String
    }

    /// The server, started once per process.
    private static let server: Result<Server, Unavailable> = {
        do {
            return .success(try Server.start())
        } catch let error as Unavailable {
            if ProcessInfo.processInfo.environment["OSPREY_REQUIRE_POSTGRES"] == "1" {
                fatalError("OSPREY_REQUIRE_POSTGRES=1, but the PostgreSQL test server is unavailable: \(error.message)")
            }
            print("note: the store tests run without their postgres backend: \(error.message)")
            return .failure(error)
        } catch {
            fatalError("the PostgreSQL test server did not start: \(error)")
        }
    }()

    private struct Server: Sendable {
        let adminURL: String
        let admin: PostgresDatabase

        static func start() throws -> Server {
            if let url = ProcessInfo.processInfo.environment["OSPREY_TEST_POSTGRES_URL"], !url.isEmpty {
                return Server(adminURL: url, admin: try PostgresDatabase(url: url, maxConnections: 2))
            }
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().appendingPathComponent("scripts/postgres-server.sh").path
            let directory = NSTemporaryDirectory() + "osprey-test-pg-\(getpid())"
            // The script's watcher stops the server once this process is gone, however it ends.
            let (status, output) = try run(["env", "OWNER_PID=\(getpid())", "bash", script, "start", directory])
            if status == 3 { throw Unavailable(message: output.trimmingCharacters(in: .whitespacesAndNewlines)) }
            guard status == 0, let url = output.split(separator: "\n").last.map(String.init) else {
                throw Unavailable(message: "scripts/postgres-server.sh start failed (\(status)): \(output)")
            }
            return Server(adminURL: url, admin: try PostgresDatabase(url: url, maxConnections: 2))
        }

        func createDatabase(_ name: String) throws {
            try admin.execute(administration: "CREATE DATABASE \(name)")
        }

        /// The admin URL with another database.
        func url(database: String) -> String {
            var components = URLComponents(string: adminURL)!
            components.path = "/" + database
            return components.string!
        }
    }

    /// Runs a command through the shell; returns its exit status and its output (standard
    /// output and error). Foundation's `Process.waitUntilExit` can hang inside a static's
    /// initializer on Linux, so this waits with `waitpid`.
    private static func run(_ arguments: [String]) throws -> (Int32, String) {
        let output = NSTemporaryDirectory() + "osprey-test-pg-output-\(getpid())-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let command = "\(quoted) > '\(output)' 2>&1"
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = ["/bin/sh", "-c", command].map { (word: String) in strdup(word) } + [nil]
        defer { argv.forEach { free($0) } }
        let spawned = posix_spawn(&pid, "/bin/sh", nil, nil, argv, environ)
        guard spawned == 0 else { throw Unavailable(message: "cannot run /bin/sh (posix_spawn: \(spawned))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0
        return (exited ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
    }
}
