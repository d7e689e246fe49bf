import ArgumentParser
import Logging
import OspreyEngine
import OspreyStorage

/// `serve --node`: the process as one node of a cluster sharing a PostgreSQL store
/// (docs/operations.md, "Partitioned serving").
struct ClusterOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve as the node NAME of a cluster sharing the --store database: only the users the partition ring over the live nodes gives this node (others get 421 with their node's address). Each node has its own name, as `osprey router-config --node` lists them.",
        valueName: "name"))
    var node: String?
    @Option(help: ArgumentHelp("The HOST:PORT other nodes' 421 answers send this node's users to (default: --host and --port).", valueName: "host:port"))
    var advertise: String?
    @Option(help: "Milliseconds between the node's heartbeats (100 to 60000).") var heartbeatMs = 1000
    @Option(help: "A node silent this many milliseconds is out of the ring, its users served by the others (more than three times --heartbeat-ms).")
    var memberTimeoutMs = 5000
    @Option(help: "Partition ring buckets: the same on every node and in `osprey router-config --buckets` (1 to 65536).")
    var buckets = PartitionRing.defaultBuckets
    @Option(help: "With --item-updates on: milliseconds between publishing what this node's items learned and folding in the other nodes' (100 to 600000; shorter serves fresher items at a cost in durable observes, see BENCHMARKS.md).")
    var itemExchangeMs = 5000

    func validate() throws {
        guard let node else { return }
        guard !node.isEmpty, node.count <= 64, node.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ValidationError("--node must be 1 to 64 letters, digits, `-`, `_` or `.`, not `\(node)`")
        }
        if let advertise { _ = try Self.hostPort(advertise) }
        try Bounds.check("heartbeat-ms", heartbeatMs, 100...60_000)
        try Bounds.check("member-timeout-ms", memberTimeoutMs, 1...3_600_000)
        guard memberTimeoutMs > 3 * heartbeatMs else {
            throw ValidationError("--member-timeout-ms must be more than three times --heartbeat-ms (a node that has not reached the store for three heartbeats fences itself, before the others take its users)")
        }
        try Bounds.check("buckets", buckets, 1...65_536)
        try Bounds.check("item-exchange-ms", itemExchangeMs, 100...600_000)
    }

    /// Checks `HOST:PORT`.
    static func hostPort(_ text: String) throws -> String {
        guard let colon = text.lastIndex(of: ":"), !text[..<colon].isEmpty, let port = Int(text[text.index(after: colon)...]),
              Bounds.port.contains(port), port > 0 else {
            throw ValidationError("--advertise takes HOST:PORT, not `\(text)`")
        }
        return text
    }

    /// Opens the shared store and the membership for this node, or nil without `--node`.
    /// - Throws: `ValidationError` for settings a node cannot run with; ``StorageError`` when the
    ///   database cannot be opened or the name is taken.
    func open(_ o: ServeOptions, logger: Logger) throws -> (stores: Stores, node: ClusterNode)? {
        guard let node else { return nil }
        guard let url = o.store else {
            throw ValidationError("--node needs --store postgres://…: the nodes of a cluster share one PostgreSQL database")
        }
        _ = try StoreLocation(dataDir: o.dataDir, store: url)
        let stores = try PostgresStores(url: url, access: .shared, logger: logger)
        let membership = try PostgresMembership(database: stores.database, name: node)
        let configuration = ClusterNode.Configuration(
            member: ClusterMember(name: node, address: advertise ?? "\(o.host):\(o.port)"),
            heartbeatInterval: .milliseconds(heartbeatMs), memberTimeout: .milliseconds(memberTimeoutMs), buckets: buckets,
            itemExchangeInterval: .milliseconds(itemExchangeMs))
        let contributions = try PostgresItemContributions(database: stores.database)
        return (stores.stores, ClusterNode(configuration: configuration, store: membership, contributions: contributions))
    }
}
