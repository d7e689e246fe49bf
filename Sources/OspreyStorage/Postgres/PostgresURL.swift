import Foundation
import PostgresNIO

/// A PostgreSQL URL as `serve --store` takes it (docs/operations.md, "PostgreSQL"):
/// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=SOCKET_DIRECTORY]`. With `host=` in the
/// query the connection goes to the unix socket `SOCKET_DIRECTORY/.s.PGSQL.PORT`, as libpq's does;
/// without a password in the URL, `PGPASSWORD` is used when set. TLS is not offered: reach the
/// server over loopback, a unix socket or a private network.
struct PostgresURL {
    let configuration: PostgresConnection.Configuration
    /// The URL without its password.
    let redacted: String

    init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        func bad(_ why: String) -> StorageError {
            StorageError(.io, "not a PostgreSQL URL (\(why)): expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?host=SOCKET_DIRECTORY]")
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme,
              scheme == "postgres" || scheme == "postgresql" else {
            throw bad("the scheme must be postgres://")
        }
        guard let user = components.user, !user.isEmpty else { throw bad("no user") }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty, !database.contains("/") else { throw bad("no database name after the host") }
        let port = components.port ?? 5432
        guard (1...65_535).contains(port) else { throw bad("port \(port) is out of range") }
        let password = components.password ?? environment["PGPASSWORD"]
        var socketDirectory: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "host": socketDirectory = item.value
            case "sslmode" where item.value == "disable": break
            default: throw bad("unknown parameter \(item.name)\(item.value.map { "=\($0)" } ?? "")")
            }
        }
        if let socketDirectory {
            guard socketDirectory.hasPrefix("/") else { throw bad("host= must be a socket directory's absolute path") }
            configuration = PostgresConnection.Configuration(unixSocketPath: socketDirectory + "/.s.PGSQL.\(port)", username: user,
                                                             password: password, database: database)
        } else {
            guard let host = components.host, !host.isEmpty else { throw bad("no host") }
            configuration = PostgresConnection.Configuration(host: host, port: port, username: user, password: password,
                                                             database: database, tls: .disable)
        }
        var shown = components
        if shown.password != nil { shown.password = "***" }
        redacted = shown.string ?? "postgres://\(user)@…/\(database)"
    }
}
