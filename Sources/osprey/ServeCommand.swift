import ArgumentParser
import Foundation
import Hummingbird
import Logging
import NIOCore
import OspreyEngine
import OspreyModel
import OspreyServer
import OspreyStorage
import ServiceLifecycle

/// `osprey serve`: serve every model in a data directory over HTTP or HTTPS.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Serve every model in a data directory over HTTP (or HTTPS).")

    @OptionGroup var options: ServeOptions
    @OptionGroup var tls: TLSOptions
    @OptionGroup(title: "Cluster") var cluster: ClusterOptions

    func run() async throws {
        try await serve(options, tls: try tls.serverTLS(), cluster: cluster)
    }
}

/// `--tls-cert` and `--tls-key`: `serve`'s only, so `quickstart` stays plain HTTP on loopback.
struct TLSOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Serve HTTPS with this PEM certificate chain (the server's certificate first, then any intermediates); needs --tls-key.",
        valueName: "file"))
    var tlsCert: String?
    @Option(help: ArgumentHelp("The PEM private key of --tls-cert's certificate (unencrypted); needs --tls-cert.", valueName: "file"))
    var tlsKey: String?

    /// Both options or neither; both files are read and checked here, so a bad one is a usage
    /// error before the store is opened or the port bound.
    func validate() throws {
        _ = try serverTLS()
    }

    /// The certificate and key, nil without the options.
    /// - Throws: `ValidationError` when only one option is given, or naming the option and file
    ///   that is missing, unreadable, not PEM, or a key that is not the certificate's.
    func serverTLS() throws -> ServerTLS? {
        switch (tlsCert, tlsKey) {
        case (nil, nil): return nil
        case (_?, nil): throw ValidationError("--tls-cert needs --tls-key: give the certificate's private key too")
        case (nil, _?): throw ValidationError("--tls-key needs --tls-cert: give the certificate chain too")
        case let (cert?, key?):
            do {
                return try ServerTLS(certificateFile: cert, keyFile: key)
            } catch {
                let option = error.kind == .certificate ? "--tls-cert" : "--tls-key"
                throw ValidationError("\(option) \(error.file) \(error.problem)")
            }
        }
    }
}

struct ServeOptions: ParsableArguments {
    @Option(help: "Data directory.") var dataDir = "osprey-data"
    @Option(help: StoreLocation.help) var store: String?
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "Largest accepted request body in bytes.") var maxBodyBytes = 1 << 20
    @Option(help: "Largest label magnitude an observation may have: labels outside -N...N are refused (400).") var maxAbsLabel = InputRules.defaultMaxAbsLabel
    @Option(help: "Snapshot changed user weights after this many observations (restart replays at most this many).") var snapshotObservations = 500_000
    @Option(help: "Versions kept per model after a retrain (the serving one and its parent always are).") var keepVersions = 10
    @Flag(inversion: .prefixedNo, help: "Retrain a model by itself when it goes stale (default: on in quickstart, off in serve).")
    var autoRetrain: Bool?
    @Option(help: "Least seconds between two automatic retrains of a model.") var autoRetrainInterval = 30.0
    @Option(help: "Most automatic retrains of a model in any hour.") var autoRetrainsPerHour = 20
    @Option(help: "Observations per window of the staleness monitor.") var staleWindow = 1000
    @Option(help: "A retrain fits each user's weights on their latest N ratings only (older ones still inform the items), so retrains can follow drifting tastes (default: all).") var retrainWindow: Int?
    @Option(help: "A model is stale when its windowed loss exceeds this multiple of its baseline (the lower of its validation loss and the best its predecessors met).") var staleThreshold = 1.5
    @Option(help: "Share of observations held out from learning as the validation sample (0 to 0.5; keep it fixed for a data directory).") var validationFraction = 0.02
    @Option(help: "Prediction cache entries per model (answers to predict and topk; 0 turns it off).") var predictionCache = 100_000
    @Option(help: "Prediction and feature cache eviction policy: s3fifo or lru.") var cachePolicy = "s3fifo"
    @Option(help: "Feature cache entries per model: the hottest items' vectors kept contiguous in front of the feature table, for predict and candidate-list topk (0: none; a materialized table row is cheaper to read than a lookup).") var featureCache = 0
    @Option(help: "Computed feature cache entries per model: vectors of catalogue items computed from their attributes, kept so each is computed once (0: computed on every read).") var computedFeatureCache = FeatureCacheConfiguration.computedDefault
    @Flag(help: "Cache single-item predictions too, not only top-k rankings (a materialized score is cheaper than a lookup).") var cacheScores = false
    @Option(help: "Hottest cached answers a new version precomputes before it serves.") var cacheRepopulate = 10_000
    @Option(help: "Greedy candidates an exploring whole-catalogue top-k chooses among (at least 2k).") var exploreShortlist = 100
    @Option(help: "Posterior draws behind a Thompson top-k answer's propensities (0: none).") var thompsonSamples = 64
    @Flag(inversion: .prefixedNo, help: "Log top-k decisions and give answers an event_id (for feedback joins and off-policy evaluation).")
    var decisionLog = true
    @Option(help: "Hours a logged decision is kept for feedback joins and policy evaluation (0: regardless of age).") var decisionRetention = 168.0
    @Option(help: "Logged decisions kept at most; the oldest beyond this are deleted (0: no limit).") var maxDecisions = 10_000_000
    @Option(help: "Users per model whose full ridge state stays in memory (the hot tier; `all`: every user, no tiering). Every user's weights stay in memory regardless; a cold user's state is rebuilt from the snapshot and the log when it learns.") var hotUsers = "100000"
    @Flag(inversion: .prefixedNo, help: "After a start, make the users who were hot at the last snapshot (each snapshot and a graceful stop record them) hot again in the background, so their first observations need no rebuild.")
    var warmStart = true
    @Option(help: "Items learn online too: `on` makes every learned observation an exact ridge step of its item's row as well as its user's (snapshotted and replayed like users); `off` learns users only.") var itemUpdates = "off"
    @Option(help: "With --item-updates on, items per model whose ridge state stays in memory (`all`: every item's); after each snapshot the least recently learned of the others go cold, their state read back from the snapshot store when they next learn. A cluster node keeps every item's.") var hotItems = "100000"
    @Option(help: "Milliseconds between publications of the item rows learned online to what answers read; each publication invalidates cached answers (with --item-updates on).") var itemPublishMs = 1000
    @Option(help: "Where a retrain gathers its ratings, trains and stores the new version: `worker`, a child process (`osprey retrain-worker`, 10 nice levels lower), so this process holds neither the ratings nor the ALS working set while it trains, and only loads and swaps in what it stored; `server`, this process (its memory grows by the training's while a retrain runs).")
    var retrainIn = "worker"
    @Option(help: "Models this server serves at most: POST /v1/models refuses one more (1 to 10000).") var maxModels = 100
    @Flag(inversion: .prefixedNo, help: "Answer predict, in-memory topk and observe (without event_id) requests on the network event loops, past the router (off: every request goes through the router).")
    var fastPath = true
    @Option(help: "Network event-loop threads (default: half the cores, at least one).") var eventLoops: Int?
    @Option(help: "Threads that score whole-catalogue top-k calls off the event loops (default: one per core; 0: on the event loops).") var scanThreads: Int?
    @Option(help: "Log level (trace, debug, info, notice, warning, error).") var logLevel = "info"
    @Option(help: "Access tokens, one a line: `ROLES TOKEN` (roles read, write, admin, comma-separated; tokens of 16 characters or more). With tokens (here or in OSPREY_TOKENS), every request needs `Authorization: Bearer TOKEN`.")
    var tokensFile: String?
    @Flag(help: "Serve on an address other than loopback without access tokens (refused otherwise).") var insecure = false
    @Flag(help: "With access tokens, serve /metrics without one (otherwise it needs `read`).") var openMetrics = false
    @Flag(inversion: .prefixedNo, help: "With access tokens, serve /healthz without one (off: it needs `read`).")
    var openHealth = true

    /// Every option checked against ``Bounds`` before anything runs (`quickstart` checks them
    /// before it generates and trains).
    func validate() throws {
        try Bounds.check("port", port, Bounds.port)
        try Bounds.check("max-body-bytes", maxBodyBytes, Bounds.bodyBytes)
        try validateMaxAbsLabel(maxAbsLabel)
        try Bounds.check("snapshot-observations", snapshotObservations, 1...Int.max)
        try Bounds.check("keep-versions", keepVersions, 1...Int.max)
        try Bounds.check("stale-window", staleWindow, Bounds.staleWindow)
        if let retrainWindow { try Bounds.check("retrain-window", retrainWindow, 1...Int.max) }
        try Bounds.check("auto-retrain-interval", autoRetrainInterval, Bounds.autoRetrainInterval)
        try Bounds.check("auto-retrains-per-hour", autoRetrainsPerHour, Bounds.autoRetrainsPerHour)
        guard staleThreshold > 1, staleThreshold.isFinite else { throw ValidationError("--stale-threshold must be a number greater than 1") }
        try Bounds.check("validation-fraction", validationFraction, 0...0.5)
        try Bounds.check("prediction-cache", predictionCache, Bounds.cacheEntries)
        try Bounds.check("feature-cache", featureCache, Bounds.cacheEntries)
        try Bounds.check("computed-feature-cache", computedFeatureCache, Bounds.cacheEntries)
        try Bounds.check("cache-repopulate", cacheRepopulate, Bounds.cacheEntries)
        try Bounds.check("explore-shortlist", exploreShortlist, 1...Bounds.items.upperBound)
        try Bounds.check("thompson-samples", thompsonSamples, Bounds.posteriorSamples)
        try Bounds.check("decision-retention", decisionRetention, Bounds.retentionHours)
        try Bounds.check("max-decisions", maxDecisions, 0...Int.max)
        guard ["worker", "server"].contains(retrainIn) else { throw ValidationError("--retrain-in must be `worker` or `server`, not `\(retrainIn)`") }
        guard ["on", "off"].contains(itemUpdates) else { throw ValidationError("--item-updates must be `on` or `off`, not `\(itemUpdates)`") }
        try Bounds.check("item-publish-ms", itemPublishMs, Bounds.publishMilliseconds)
        try Bounds.check("max-models", maxModels, 1...10_000)
        guard hotUserCount != nil else { throw ValidationError("--hot-users must be a number of users (0 or more) or `all`") }
        guard hotItemCount != nil else { throw ValidationError("--hot-items must be a number of items (1 or more) or `all`") }
        if let eventLoops { try Bounds.check("event-loops", eventLoops, Bounds.eventLoops) }
        if let scanThreads { try Bounds.check("scan-threads", scanThreads, Bounds.scanThreads) }
        guard EvictionPolicy(rawValue: cachePolicy) != nil else {
            throw ValidationError("unknown --cache-policy \(cachePolicy); use one of \(EvictionPolicy.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        let tokens = try accessTokens()
        do {
            try AccessControl.checkExposure(host: host, hasTokens: !tokens.isEmpty, insecure: insecure)
        } catch {
            throw ValidationError(error.description)
        }
    }

    /// The tokens of `--tokens-file` and of the `OSPREY_TOKENS` environment variable (entries
    /// separated by `;` or newlines), never from the command line, where `ps` shows them
    /// (docs/operations.md, "Access tokens").
    /// - Throws: `ValidationError` naming the file and line (or the variable's entry) that is
    ///   malformed, never the token.
    func accessTokens(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> AccessTokens {
        do {
            var tokens = AccessTokens()
            if let tokensFile {
                let text: String
                do {
                    text = try String(contentsOfFile: tokensFile, encoding: .utf8)
                } catch {
                    throw ValidationError("cannot read --tokens-file \(tokensFile): \(error.localizedDescription)")
                }
                tokens = try AccessTokens(parsing: text, source: "--tokens-file \(tokensFile)")
                guard !tokens.isEmpty else { throw ValidationError("--tokens-file \(tokensFile) holds no token") }
            }
            if let variable = environment["OSPREY_TOKENS"] {
                tokens = tokens.merging(try AccessTokens(parsing: variable, source: "OSPREY_TOKENS", separators: [";"]))
            }
            return tokens
        } catch let error as AccessTokensError {
            throw ValidationError(error.description)
        }
    }

    /// `--hot-users` as a number (`all`: `Int.max`), nil when it is neither.
    var hotUserCount: Int? {
        if hotUsers == "all" { return .max }
        return Int(hotUsers).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// `--hot-items` as a number (`all`: `Int.max`), nil when it is neither.
    var hotItemCount: Int? {
        if hotItems == "all" { return .max }
        return Int(hotItems).flatMap { $0 >= 1 ? $0 : nil }
    }
}

/// Runs the manager and the HTTP server until SIGTERM or SIGINT; then the server finishes its
/// in-flight requests, the manager snapshots, and the process exits 0.
///
/// With `tls`, the server speaks HTTPS only (the access-token rule for other hosts still holds).
func serve(_ o: ServeOptions, tls: ServerTLS? = nil, cluster options: ClusterOptions? = nil, autoRetrainByDefault: Bool = false,
           banner: (@Sendable (String) -> Void)? = nil) async throws {
    try o.validate()  // done by the parser already; what follows relies on it
    let retention = DecisionLog.Retention(
        maxAge: o.decisionRetention > 0 ? .milliseconds(Int64(o.decisionRetention * 3_600_000)) : nil,
        maxCount: o.maxDecisions > 0 ? o.maxDecisions : nil)
    let policy = EvictionPolicy(rawValue: o.cachePolicy) ?? .s3fifo
    let hotUsers = o.hotUserCount ?? 0
    let level = Logger.Level(rawValue: o.logLevel) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
    let logger = Logger(label: "osprey")
    let location = try StoreLocation(dataDir: o.dataDir, store: o.store)
    guard location.exists else {
        throw ValidationError("no Osprey store in \(o.dataDir); create a model first with `osprey train --data-dir \(o.dataDir) --model NAME --ratings FILE` or run `osprey quickstart`")
    }
    let cluster = try options?.open(o, logger: logger)
    var configuration = Manager.Configuration(
        snapshotObservations: o.snapshotObservations, maxAbsLabel: o.maxAbsLabel, keepVersions: o.keepVersions,
        monitor: .init(window: o.staleWindow, threshold: o.staleThreshold, validationFraction: o.validationFraction),
        autoRetrain: o.autoRetrain ?? autoRetrainByDefault,
        autoRetrainLimit: .init(minimumInterval: .milliseconds(Int64(o.autoRetrainInterval * 1000)), perHour: o.autoRetrainsPerHour),
        retrainWindow: o.retrainWindow,
        predictionCache: .init(capacity: o.predictionCache, policy: policy, repopulate: o.cacheRepopulate, scores: o.cacheScores),
        featureCache: .init(capacity: o.featureCache, policy: policy),
        computedFeatureCache: .init(capacity: o.computedFeatureCache, policy: policy),
        exploration: .init(shortlist: o.exploreShortlist, propensitySamples: o.thompsonSamples, logDecisions: o.decisionLog,
                           decisionRetention: retention),
        hotUsers: hotUsers, warmStart: o.warmStart, itemUpdates: o.itemUpdates == "on",
        itemPublishInterval: .milliseconds(o.itemPublishMs), maxModels: o.maxModels, hotItems: o.hotItemCount ?? .max)
    if o.retrainIn == "worker" { configuration.retrainWorker = ProcessRetrainWorker(store: location) }
    let manager = try Manager(stores: try cluster?.stores ?? location.open(logger: logger), configuration: configuration,
                              metrics: .prometheus(), logger: logger, cluster: cluster?.node)
    if let heartbeats = manager.heartbeats {
        // A member before it listens: the buckets it gains wait their handover delay anyway.
        guard let change = heartbeats.beatOnce() else {
            throw ValidationError("node \(heartbeats.node.name) could not join the cluster: its first heartbeat failed (see the log)")
        }
        logger.info("joined the cluster", metadata: [
            "node": "\(heartbeats.node.name)", "members": "\(change.members.map(\.name))", "buckets": "\(change.gained.count)",
        ])
    }
    let tokens = try o.accessTokens()
    let server = ServerConfiguration(host: o.host, port: o.port, maxBodyBytes: o.maxBodyBytes, fastPath: o.fastPath,
                                     eventLoops: o.eventLoops, scanThreads: o.scanThreads,
                                     access: .init(tokens: tokens, openMetrics: o.openMetrics, openHealth: o.openHealth),
                                     tls: tls)
    let threads = o.fastPath ? "\(server.eventLoopCount) event loop(s), \(server.scanThreadCount) scan thread(s)"
        : "\(server.eventLoopCount) event loop(s), no fast path"
    let access = tokens.isEmpty ? "no access tokens: every endpoint is open" : "\(tokens.count) access token(s)"
    let models = manager.registry.all.count, path = location.name
    let scheme = tls == nil ? "http" : "https"
    if let tls, tls.notValidAfter < Date() {
        logger.warning("the certificate in \(tls.certificateFile) expired on \(tls.notValidAfter); clients will refuse it")
    }
    // Announced once the socket is bound, so nothing is promised on a port that turned out busy.
    let app = buildApplication(manager: manager, configuration: server, logger: logger) { port in
        logger.info("serving \(models) model(s) from \(path) on \(scheme)://\(o.host):\(port) (\(threads); \(access))")
        banner?("\(scheme)://\(o.host):\(port)")
    }
    // Services shut down in reverse order: the server drains first, then the manager's services
    // (the ingestor answers what is queued, the snapshotter saves every changed user, ...).
    let group = ServiceGroup(configuration: .init(
        services: manager.services.map { .init(service: $0) } + [.init(service: app)],
        gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
    do {
        try await group.run()
    } catch let error as IOError where error.errnoCode == EADDRINUSE {
        throw PortInUse(host: o.host, port: o.port)
    }
}

/// The listening address is taken: said in the user's terms, with the option that changes it.
struct PortInUse: Error, CustomStringConvertible {
    let host: String
    let port: Int

    var description: String {
        "port \(port) on \(host) is already in use (another Osprey, or another server?): stop it, or choose another port with --port"
    }
}
