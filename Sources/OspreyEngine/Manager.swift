import Foundation
import Logging
import OspreyModel
import OspreyStorage
import ServiceLifecycle

/// The engine of one process (Velox §4, the manager), assembled from roles with one job each
/// (docs/architecture.md, "Main types and their roles"):
///
/// - ``ingestor``: observations in — validation, group commit, online learning, the answer;
/// - ``installer``: what serves — swaps, rollbacks, competing versions;
/// - ``retrainer``: retrain jobs, each a ``RetrainRun`` of gather, train, store, load, swap;
/// - ``snapshotter``: user-weight snapshots; ``warmStart``: the hot tier after a start;
/// - ``explorer`` and ``exploration``: exploring top-k answers, policies, off-policy evaluation;
/// - the registry of served models, which the ``Predictor`` reads.
///
/// At start it loads every model's serving version through the ``Loader``: the last snapshot,
/// then the log after it, learned in log order exactly as it was live. Its background work runs
/// as ``services``, which a service group starts and, on graceful shutdown, stops in reverse.
public final class Manager: Sendable {
    public let registry: ModelRegistry
    public let ingestor: Ingestor
    public let installer: Installer
    public let retrainer: Retrainer
    public let snapshotter: Snapshotter
    public let warmStart: WarmStart
    /// Publishes the rows items learned online (with item updates on).
    public let itemPublisher: ItemPublisher
    /// Top-k answers under each model's exploration policy, logged as decisions.
    public let explorer: Explorer
    public let exploration: ExplorationControl
    let decisions: DecisionLog
    let readAhead = WorkerPool(name: "osprey-prefetch", threads: 4)
    let stores: Stores
    let configuration: Configuration
    /// Loads serving states: at start, and for a model made later (``createModel(_:)``).
    let loader: Loader
    let logger: Logger
    /// The learning lock and how far learning has come, shared with the roles.
    let progress: LearningProgress
    /// The instruments every role records into.
    public let metrics: EngineMetrics
    /// A cluster node's heartbeats (nil: a lone process, which serves every user).
    public let heartbeats: Heartbeats?
    /// A cluster node's exchange of what its items learn (with item updates on).
    public let itemExchange: ItemExchange?

    /// Loads every model's serving version and restores its users (and a competing
    /// challenger's). O(users · d) per model when tiered, plus the replay of the log.
    /// - Parameters:
    ///   - metrics: where the roles record their metrics (the default records nothing).
    ///   - cluster: this process as a node of a cluster (docs/operations.md, "Partitioned
    ///     serving"): it then loads no user at start, serves only the users the ring gives it,
    ///     adopting each from the stores when first asked for, and refuses changes every node
    ///     would have to load. With item updates, the node needs its contribution store.
    /// - Throws: ``StorageError`` when the stores cannot be read.
    public init(stores: Stores, configuration: Configuration = .init(), metrics: EngineMetrics = .init(),
                logger: Logger, cluster: ClusterNode? = nil) throws {
        precondition(cluster == nil || !configuration.itemUpdates || cluster?.contributions != nil,
                     "a cluster node learns items only with a store to exchange them through")
        self.stores = stores
        self.configuration = configuration
        self.metrics = metrics
        let decisions = DecisionLog(store: stores.decisions, logger: logger, retention: configuration.exploration.decisionRetention,
                                    metrics: metrics.decisionLog)
        self.decisions = decisions
        let loader = Loader(stores: stores, configuration: configuration, adopting: cluster != nil,
                            sharedItems: configuration.itemUpdates ? cluster.flatMap { c in c.contributions.map { (c.name, $0) } } : nil)
        self.loader = loader
        self.logger = logger
        let registry = ModelRegistry(models: try Self.load(stores, loader: loader, decisions: decisions, configuration: configuration,
                                                            metrics: metrics, logger: logger, cluster: cluster), cluster: cluster)
        self.registry = registry
        ProcessMemory.returnFreed()
        let progress = LearningProgress(applied: try stores.log.lastSequence())
        self.progress = progress
        let installer = Installer(stores: stores, loader: loader, registry: registry, progress: progress, decisions: decisions,
                                  logger: logger)
        self.installer = installer
        let retrainer = Retrainer(stores: stores, loader: loader, installer: installer, registry: registry, progress: progress,
                                  configuration: configuration, metrics: metrics, logger: logger)
        self.retrainer = retrainer
        ingestor = Ingestor(log: stores.log, registry: registry, decisions: decisions, progress: progress,
                            rules: configuration.inputRules, readAhead: readAhead,
                            metrics: metrics.ingest, logger: logger,
                            onStale: { retrainer.wentStale($0) })
        snapshotter = Snapshotter(stores: stores, registry: registry, progress: progress, configuration: configuration,
                                  metrics: metrics.snapshots, logger: logger)
        warmStart = WarmStart(registry: registry, enabled: configuration.warmStart, logger: logger)
        itemPublisher = ItemPublisher(registry: registry, configuration: configuration)
        explorer = Explorer(registry: registry, log: decisions, configuration: configuration.exploration)
        let exploration = ExplorationControl(stores: stores, registry: registry, decisions: decisions, logger: logger)
        self.exploration = exploration
        heartbeats = try cluster.map { node in
            try Heartbeats(node: node, registry: registry, progress: progress, installer: installer, exploration: exploration,
                           maxModels: configuration.maxModels, logger: logger) { record in
                try Self.loadModel(record, stores: stores, loader: loader, decisions: decisions, configuration: configuration,
                                   metrics: metrics, logger: logger, cluster: node)
            }
        }
        itemExchange = cluster.flatMap { node in
            node.contributions.flatMap { configuration.itemUpdates ? ItemExchange(node: node, store: $0, registry: registry, metrics: metrics.itemExchange, logger: logger) : nil }
        }
    }

    /// The engine's background work, in start order; a service group stops them in reverse on
    /// graceful shutdown: the ingestor answers what is queued, the warm start stops, the
    /// item publisher publishes once more, the snapshotter saves every changed user (and item),
    /// the decision log writes its buffer, the read-ahead threads end. List them before the HTTP
    /// server in the group, so the server stops first.
    /// A cluster node's heartbeats stop after the ingestor: the node leaves once it has answered
    /// what was queued, then takes its final snapshot; its item exchange publishes once more
    /// before that.
    public var services: [any Service] {
        [readAhead, decisions, snapshotter] + (heartbeats.map { [$0] } ?? []) + [itemPublisher]
            + (itemExchange.map { [$0] } ?? []) + [warmStart, ingestor]
    }

    /// Loads every model of the stores, with its competition if one runs.
    private static func load(_ stores: Stores, loader: Loader, decisions: DecisionLog, configuration: Configuration,
                             metrics: EngineMetrics, logger: Logger, cluster: ClusterNode?) throws -> [ServedModel] {
        try stores.versions.models().map { record in
            try loadModel(record, stores: stores, loader: loader, decisions: decisions, configuration: configuration,
                          metrics: metrics, logger: logger, cluster: cluster)
        }
    }

    /// Loads model `record` as stored, with its competition if one runs. A version still `built`
    /// was being installed when the last process stopped, and is marked failed; on a cluster only
    /// when no other live node holds the model's retrain (it may be installing it).
    static func loadModel(_ record: ModelRecord, stores: Stores, loader: Loader, decisions: DecisionLog, configuration: Configuration,
                          metrics: EngineMetrics, logger: Logger, cluster: ClusterNode?) throws -> ServedModel {
        let policies = try stores.versions.explorationPolicies()
        let competitions = try stores.versions.competitions()
        if try cluster?.claimRetrain(model: record.name) == nil {
            defer { try? cluster?.releaseRetrain(model: record.name) }
            let unserved = try stores.versions.failUnservedVersions(model: record.name)
            if !unserved.isEmpty {
                logger.warning("versions never served (their retrain did not finish installing) marked failed", metadata: [
                    "model.name": "\(record.name)", "versions": "\(unserved)",
                ])
            }
        }
        let clock = ContinuousClock()
        let start = clock.now
        let modelMetrics = metrics.model(record.name, featureCache: configuration.featureCache.capacity > 0)
        let (state, _) = try loader.load(model: record.name, version: record.servingVersion,
                                         continuing: .init(metrics: modelMetrics), warmStart: configuration.warmStart)
        let policy: ExplorationPolicy
        do { policy = try ExplorationPolicy.parse(policies[record.name] ?? "greedy") } catch {
            throw StorageError(.corrupt, "model \(record.name) has an unreadable exploration policy: \(error)")
        }
        let model = ServedModel(state: state, observations: try stores.log.observationCount(model: record.name),
                                exploration: policy, decisions: try stores.decisions.decisionCount(model: record.name),
                                metrics: modelMetrics)
        if let record = competitions[record.name] {
            model.competition = try Installer.restoreCompetition(record, of: model, stores: stores, loader: loader,
                                                                 decisions: decisions)
        }
        logger.info("loaded model", metadata: [
            "model.name": "\(record.name)", "model.version": "\(record.servingVersion)",
            "model.users": "\(state.users.count)", "model.users.hot": "\(state.users.hotCount)",
            "duration": "\(clock.now - start)",
        ])
        return model
    }

    /// The model's serving version, sizes and version history.
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func info(model name: String) throws -> ModelInfo {
        let model = try registry.model(name)
        let state = model.current
        let v = state.version
        return ModelInfo(
            name: name, version: v.number, dimension: v.metadata.factors, users: state.users.count,
            items: v.features.catalog.count, observations: model.observations,
            versions: try stores.versions.versions(model: name), quality: state.quality, exploration: model.exploration,
            decisions: model.decisions,
            competition: model.competition.map { c in
                CompetitionInfo(champion: v.number, challenger: c.challenger.version.number, allocation: c.allocation,
                                since: c.since, challengerShare: c.challengerShare(champion: v.number),
                                arms: c.standings(champion: v.number))
            })
    }

    /// What the model knows of user `uid` (a user never seen is reported as bootstrapped with no
    /// observations).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func info(model name: String, uid: String) throws -> UserInfo {
        let state = try registry.state(model: name, uid: uid)
        return state.users.read(uid) { w in
            guard let w else { return UserInfo(uid: uid, observations: 0, runningLoss: nil, bootstrapped: true) }
            return UserInfo(uid: uid, observations: w.observations, runningLoss: w.runningLoss, bootstrapped: w.bootstrapped)
        }
    }
}
