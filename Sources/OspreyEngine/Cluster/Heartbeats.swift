import Dispatch
import Logging
import OspreyStorage
import ServiceLifecycle

/// A cluster node's heartbeats (docs/operations.md, "Partitioned serving"): every
/// ``ClusterNode/Configuration/heartbeatInterval`` the node beats (``ClusterNode/beat()``), and
/// when the ring changed it drops the users of the buckets it lost (and gained) from every
/// learning state, with their cached answers (their owner adopts them from the stores). A failed heartbeat
/// is logged; the node fences itself if they keep failing.
///
/// It also keeps the node on what the version store says every node serves: its models (one
/// made on another node is loaded), each model's serving version (``Installer/follow(_:serving:)``), exploration policy
/// (``ExplorationControl/follow(_:stored:)``) and item catalogue (``ItemCatalogue/follow(_:model:)``),
/// at once when another node announces a change (a retrain, a rollback, a policy set or an item
/// written there), and at every heartbeat in case an announcement was missed.
///
/// As a `Service` it leaves the membership on graceful shutdown, after the ingestor has answered
/// every queued observation (list it before the ingestor), so the others take its users at
/// their next heartbeat.
public final class Heartbeats: Service, Sendable {
    public let node: ClusterNode
    private let registry: ModelRegistry
    private let progress: LearningProgress
    private let installer: Installer
    private let exploration: ExplorationControl
    private let logger: Logger
    /// Loads a model the store holds that this node does not serve yet (made on another node).
    private let loadModel: @Sendable (ModelRecord) throws -> ServedModel
    /// The most models this node serves.
    private let maxModels: Int
    /// Version changes are followed one at a time.
    private let following = DispatchQueue(label: "osprey-follow")

    /// - Throws: the membership store's error when it cannot listen for version announcements.
    init(node: ClusterNode, registry: ModelRegistry, progress: LearningProgress, installer: Installer,
         exploration: ExplorationControl, maxModels: Int, logger: Logger,
         loadModel: @escaping @Sendable (ModelRecord) throws -> ServedModel) throws {
        self.node = node
        self.registry = registry
        self.progress = progress
        self.installer = installer
        self.exploration = exploration
        self.maxModels = maxModels
        self.logger = logger
        self.loadModel = loadModel
        try node.onAnnouncement { [weak self] name in
            guard let self else { return }
            self.following.async { self.follow([name]) }
        }
    }

    /// Serves each model (of `names`, or all) as the version store holds it: its version,
    /// exploration policy and item catalogue, and a model made on another node from its first
    /// version (two reads of the store for all, and one per model for its catalogue). A failure
    /// is logged; the next heartbeat tries again.
    private func follow(_ names: Set<String>? = nil) {
        let records: [ModelRecord], policies: [String: String]
        do {
            records = try installer.stores.versions.models()
            policies = try installer.stores.versions.explorationPolicies()
        } catch {
            logger.warning("could not read the serving versions; trying again at the next heartbeat", metadata: [
                "node": "\(node.name)", "error": "\(error)",
            ])
            return
        }
        let serving = Dictionary(records.map { ($0.name, $0.servingVersion) }) { a, _ in a }
        for record in records where names?.contains(record.name) ?? true && !registry.contains(record.name) {
            do {
                try registry.creation.withLock { _ in
                    guard !registry.contains(record.name), registry.count < maxModels else { return }
                    registry.add(try loadModel(record))
                    logger.info("model made on another node followed", metadata: ["node": "\(node.name)", "model.name": "\(record.name)"])
                }
            } catch {
                logger.warning("could not load a model another node made; trying again at the next heartbeat", metadata: [
                    "node": "\(node.name)", "model.name": "\(record.name)", "error": "\(error)",
                ])
            }
        }
        for model in registry.all where names?.contains(model.name) ?? true {
            exploration.follow(model, stored: policies[model.name])
            do {
                if try model.current.catalogue.follow(installer.stores, model: model.name) > 0 {
                    for state in model.learningStates { state.predictions.invalidateAll() }
                }
            } catch {
                logger.warning("could not read the item catalogue; trying again at the next heartbeat", metadata: [
                    "node": "\(node.name)", "model.name": "\(model.name)", "error": "\(error)",
                ])
            }
            do {
                try installer.follow(model, serving: serving[model.name])
            } catch {
                logger.warning("could not load the version the store serves; trying again at the next heartbeat", metadata: [
                    "node": "\(node.name)", "model.name": "\(model.name)", "error": "\(error)",
                ])
            }
        }
    }

    /// Beats until the graceful shutdown, then leaves.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            // At a fixed rate: a slow heartbeat does not push the next one later.
            await BackgroundThread.every(self.node.configuration.heartbeatInterval, name: "osprey-heartbeat") { self.beatOnce() }
        }
        do {
            try node.leave()
            logger.info("left the cluster", metadata: ["node": "\(node.name)"])
        } catch {
            logger.warning("could not leave the cluster; the others take this node's users after the member timeout",
                           metadata: ["node": "\(node.name)", "error": "\(error)"])
        }
    }

    /// Beats once and applies what changed. Returns the change (nil when the heartbeat failed).
    @discardableResult
    public func beatOnce() -> ClusterNode.Change? {
        let change: ClusterNode.Change
        do {
            change = try node.beat()
        } catch {
            logger.warning("heartbeat failed", metadata: ["node": "\(node.name)", "error": "\(error)"])
            return nil
        }
        claimBuckets()
        if !change.lost.isEmpty || !change.gained.isEmpty {
            // A gained bucket's users are dropped too: a request served just before this node lost
            // the bucket, earlier, may have left one behind, and the bucket's owner since has
            // learned on. They are adopted afresh.
            let dropped = release(change.lost.union(change.gained))
            logger.info("cluster changed", metadata: [
                "node": "\(node.name)", "members": "\(change.members.map(\.name))",
                "buckets.gained": "\(change.gained.count)", "buckets.lost": "\(change.lost.count)", "users.dropped": "\(dropped)",
            ])
        }
        following.sync { follow() }
        return change
    }

    /// Claims the buckets this node owns and has not claimed in the log yet: waiting, if need be,
    /// for the previous holder's appends in progress, which then are in the log its users are
    /// adopted from; its later appends fail. A failure is logged; the next heartbeat tries
    /// again, and the buckets are not served meanwhile.
    private func claimBuckets() {
        let pending = node.unclaimedBuckets
        guard !pending.isEmpty else { return }
        do {
            try installer.stores.log.claimBuckets(Array(pending), node: node.name)
            node.claimed(pending)
        } catch {
            logger.warning("could not claim the buckets gained; trying again at the next heartbeat", metadata: [
                "node": "\(node.name)", "buckets": "\(pending.count)", "error": "\(error)",
            ])
        }
    }

    /// Drops the users of `buckets` from every learning state of every model, under the learning
    /// lock: an observation accepted before the change and learned after it finds its user gone,
    /// and is not learned here (``ServingState/learn(_:)``). Returns how many.
    private func release(_ buckets: Set<Int>) -> Int {
        guard !buckets.isEmpty else { return 0 }
        return progress.applied.withLock { _ in
            var dropped = 0
            for model in registry.all {
                for state in model.learningStates {
                    dropped += state.users.removeAll { buckets.contains(self.node.bucket(of: $0)) }
                    state.predictions.invalidateAll()
                }
            }
            return dropped
        }
    }
}
