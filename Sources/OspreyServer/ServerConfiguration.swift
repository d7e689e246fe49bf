import NIOCore

/// HTTP server settings.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Request bodies larger than this get 413 `payload_too_large`.
    public var maxBodyBytes: Int
    /// The largest `k` a top-k call may ask for.
    public var maxK: Int
    /// Answer `predict`, in-memory `topk` and `observe` without `event_id` on the event loops, past
    /// the router (``FastPathHandler``).
    public var fastPath: Bool
    /// Network event-loop threads (nil: half the cores, at least one). The loops only read
    /// requests and write answers (and answer `predict` and short top-k lists); whole-catalogue
    /// scans, the group commit and snapshots run on threads of their own, which the other cores
    /// are left for. On two cores one loop with the scan pool served predict with a lower p99
    /// than two loops, and as many top-k calls a second (BENCHMARKS.md).
    public var eventLoops: Int?
    /// Threads that score the fast path's whole-catalogue (and long-list) top-k calls, so an event
    /// loop only reads requests and writes answers (nil: one per core; 0: each loop scores its own).
    public var scanThreads: Int?
    /// The access tokens and open probes (default: no tokens, every endpoint open).
    public var access: AccessControl
    /// The certificate and key to speak HTTPS with (nil: plain HTTP). Both the fast path and the
    /// router answer over it.
    public var tls: ServerTLS?

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 1 << 20, maxK: Int = 10_000,
                fastPath: Bool = true, eventLoops: Int? = nil, scanThreads: Int? = nil, access: AccessControl = .init(),
                tls: ServerTLS? = nil) {
        precondition(eventLoops.map { $0 >= 1 } ?? true, "at least one event loop")
        precondition(scanThreads.map { $0 >= 0 } ?? true, "scan threads cannot be negative")
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.maxK = maxK
        self.fastPath = fastPath
        self.eventLoops = eventLoops
        self.scanThreads = scanThreads
        self.access = access
        self.tls = tls
    }

    /// The event loops of a server built without a count: half the cores, at least one.
    public static let defaultEventLoops = max(1, System.coreCount / 2)

    /// The event-loop threads a server with these settings runs.
    public var eventLoopCount: Int { eventLoops ?? Self.defaultEventLoops }

    /// The scan threads a server with these settings runs at most (0: none, the loops scan).
    public var scanThreadCount: Int { scanThreads ?? System.coreCount }
}
