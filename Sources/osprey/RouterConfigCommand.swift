import ArgumentParser
import Foundation
import OspreyEngine

/// `osprey router-config`: an HAProxy configuration that sends each user's requests to the node
/// that serves them (``PartitionRing``; docs/operations.md, "Partitioned serving").
struct RouterConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "router-config",
        abstract: "Write an HAProxy configuration that routes each user to the node that serves it.",
        discussion: """
            Each request under /v1/models/MODEL/users/UID/ goes to the first live node of the \
            UID's bucket's ranking (the CRC-32 of the UID's path segment, modulo --buckets; \
            rendezvous hashing over the nodes' names), as the nodes themselves compute it. Other \
            requests go round-robin. HAProxy's health checks (GET /healthz) decide which nodes \
            are live; a node found down is skipped, and its buckets go to the next node of each \
            ranking.
            """)

    @Option(name: .customLong("node"), help: "A node as NAME=HOST:PORT (repeat for each node).")
    var nodes: [String] = []
    @Option(help: "Address HAProxy listens on.") var bind = "127.0.0.1:8080"
    @Option(help: "Buckets the uids are hashed into (the nodes must use the same number).") var buckets = PartitionRing.defaultBuckets
    @Option(help: "Milliseconds between two health checks of a node (2 failures mark it down, 2 successes up).")
    var checkMs = 500
    @Option(help: "Write the configuration to this file instead of standard output.") var out: String?

    struct Node {
        var name: String
        var address: String
    }

    func parsedNodes() throws -> [Node] {
        guard !nodes.isEmpty else { throw ValidationError("give each node with --node NAME=HOST:PORT") }
        let parsed = try nodes.map { text -> Node in
            let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty,
                  parts[0].allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ValidationError("--node \(text): expected NAME=HOST:PORT with a NAME of letters, digits, '-', '_' or '.'")
            }
            guard let colon = parts[1].lastIndex(of: ":"), let port = Int(parts[1][parts[1].index(after: colon)...]),
                  (1...65_535).contains(port), colon != parts[1].startIndex else {
                throw ValidationError("--node \(text): the address must be HOST:PORT with a port in 1...65535")
            }
            return Node(name: parts[0], address: parts[1])
        }
        let names = parsed.map(\.name)
        if Set(names).count != names.count { throw ValidationError("--node: each node needs its own name") }
        return parsed
    }

    func validate() throws {
        _ = try parsedNodes()
        guard (1...65_536).contains(buckets) else { throw ValidationError("--buckets must be in 1...65536") }
        guard (10...60_000).contains(checkMs) else { throw ValidationError("--check-ms must be in 10...60000") }
        guard bind.contains(":") else { throw ValidationError("--bind must be HOST:PORT") }
    }

    func run() throws {
        let text = Self.configuration(nodes: try parsedNodes(), bind: bind, buckets: buckets, checkMs: checkMs)
        if let out {
            do {
                try text.write(toFile: out, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("--out: cannot write \(out): \(error.localizedDescription)")
            }
            Console.info("wrote the HAProxy configuration for \(nodes.count) node(s) and \(buckets) buckets to \(out)")
        } else {
            print(text, terminator: "")
        }
    }

    /// The configuration: a frontend on `bind`, one backend with every node, and per bucket one
    /// `use-server` rule per node in the bucket's ranking order.
    static func configuration(nodes: [Node], bind: String, buckets: Int, checkMs: Int) -> String {
        let ring = PartitionRing(nodes: nodes.map(\.name), buckets: buckets)
        var lines = [
            "# Written by `osprey router-config` for \(nodes.count) node(s) and \(buckets) buckets.",
            "# Each user's requests go to the first live node of its bucket's ranking, as the nodes compute it",
            "# (docs/operations.md, \"Partitioned serving\"). Do not edit the rules by hand: write it again.",
            "global",
            "    maxconn 4096",
            "",
            "defaults",
            "    mode http",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    option http-keep-alive",
            "    # A request to a node that just died is retried at once on another (which answers 421 until it",
            "    # serves the user), not after HAProxy's one-second turn-around: the client learns fast.",
            "    retries 2",
            "    option redispatch 1",
            "",
            "frontend osprey",
            "    bind \(bind)",
            "    default_backend osprey_nodes",
            "",
            "backend osprey_nodes",
            "    balance roundrobin",
            "    option httpchk GET /healthz",
            "    # The uid is the 6th field of /v1/models/MODEL/users/UID/...: its bucket is crc32 of it, mod \(buckets).",
            "    acl user_path path_reg ^/v1/models/[^/]+/users/[^/]+",
            "    http-request set-var(txn.bucket) path,field(6,/),crc32,mod(\(buckets)) if user_path",
        ]
        for bucket in 0..<buckets {
            for node in ring.ranking(bucket: bucket) {
                lines.append("    use-server \(node) if { var(txn.bucket) -m int \(bucket) }")
            }
        }
        for node in nodes {
            lines.append("    server \(node.name) \(node.address) check inter \(checkMs) fall 2 rise 2")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
