import PostgresNIO

/// Cluster membership in PostgreSQL: table `cluster_member`, one row per node with the time of
/// its last heartbeat by the database's clock (`now()`, the transaction's start), so liveness
/// never depends on the nodes' clocks.
///
/// A node's name is its own: opening the membership takes a session advisory lock on the name
/// (on a connection of its own, held until ``PostgresDatabase/shutdown()`` or the process dies),
/// so a second process started with the same name fails at once instead of sharing its users.
public final class PostgresMembership: MembershipStore, Sendable {
    public let database: PostgresDatabase

    /// The membership table, one migration per change; a shipped one is never edited.
    static let migrations = [
        """
        CREATE TABLE cluster_member (
            name TEXT PRIMARY KEY,
            address TEXT NOT NULL,
            heartbeat TIMESTAMPTZ NOT NULL
        )
        """,
        // Which node retrains each model (``MembershipStore/claimRetrain(model:node:timeout:)``).
        """
        CREATE TABLE cluster_retrain (
            model TEXT PRIMARY KEY,
            node TEXT NOT NULL
        )
        """,
    ]

    /// Opens the membership in `database` for the node named `name`, creating its table.
    /// - Throws: ``StorageError`` `.locked` when another process holds the name, `.io` when the
    ///   database cannot be reached or migrated.
    public init(database: PostgresDatabase, name: String) throws {
        self.database = database
        try database.migrate(store: "membership", Self.migrations)
        let session = PostgresSession(connection: try database.dedicatedConnection(), database: database)
        let taken = try session.query("SELECT pg_try_advisory_lock(\(PostgresLocks.memberName), hashtext(\(name)))").first
            .map { try $0.decode(Bool.self) } ?? false
        guard taken else {
            throw StorageError(.locked, "another Osprey node named `\(name)` is running on \(database.location); "
                + "give each node its own --node name")
        }
    }

    public func heartbeat(_ member: ClusterMember, timeout: Duration) throws -> [ClusterMember] {
        let seconds = Double(timeout / .microseconds(1)) / 1e6
        return try database.transaction { s in
            // Liveness is not worth a disk flush: a heartbeat lost to a crash is the next one.
            try s.execute("SET LOCAL synchronous_commit = off")
            try s.execute("""
                INSERT INTO cluster_member (name, address, heartbeat) VALUES (\(member.name), \(member.address), now())
                ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, heartbeat = now()
                """)
            return try s.query("""
                SELECT name, address FROM cluster_member
                WHERE heartbeat >= now() - make_interval(secs => \(seconds)) ORDER BY name
                """).map { row in
                let (name, address) = try row.decode((String, String).self)
                return ClusterMember(name: name, address: address)
            }
        }
    }

    /// The channel of announcements (``MembershipStore/announceChange(model:)``).
    static let channel = "osprey_models"

    /// `NOTIFY osprey_models, MODEL`, delivered to every listening session when it commits.
    public func announceChange(model: String) throws {
        _ = try database.transaction { s in try s.query("SELECT pg_notify(\(Self.channel), \(model))") }
    }

    /// `LISTEN osprey_models` on a connection of its own, open until the database shuts down.
    public func onAnnouncement(_ handler: @escaping @Sendable (String) -> Void) throws {
        let connection = try database.dedicatedConnection()
        connection.addListener(channel: Self.channel) { _, notification in handler(notification.payload) }
        _ = try PostgresSession(connection: connection, database: database).execute("LISTEN \(unescaped: Self.channel)")
    }

    public func leave(_ name: String) throws {
        _ = try database.transaction { s in
            _ = try s.execute("DELETE FROM cluster_retrain WHERE node = \(name)")
            return try s.execute("DELETE FROM cluster_member WHERE name = \(name)")
        }
    }

    /// An upsert that takes the row only from this node or a node no longer live; of two
    /// claims at once, the second waits for the first's commit and then finds a live holder.
    public func claimRetrain(model: String, node: String, timeout: Duration) throws -> String? {
        let seconds = Double(timeout / .microseconds(1)) / 1e6
        return try database.transaction { s in
            let granted = try s.query("""
                INSERT INTO cluster_retrain (model, node) VALUES (\(model), \(node))
                ON CONFLICT (model) DO UPDATE SET node = EXCLUDED.node
                WHERE cluster_retrain.node = EXCLUDED.node OR NOT EXISTS (
                    SELECT 1 FROM cluster_member m
                    WHERE m.name = cluster_retrain.node AND m.heartbeat >= now() - make_interval(secs => \(seconds)))
                RETURNING node
                """).first != nil
            if granted { return nil }
            return try s.query("SELECT node FROM cluster_retrain WHERE model = \(model)").first.map { try $0.decode(String.self) } ?? "?"
        }
    }

    public func releaseRetrain(model: String, node: String) throws {
        _ = try database.transaction { s in
            try s.execute("DELETE FROM cluster_retrain WHERE model = \(model) AND node = \(node)")
        }
    }
}
