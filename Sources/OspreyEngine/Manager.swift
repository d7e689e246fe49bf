import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import OspreyModel
import OspreyStorage
import ServiceLifecycle
import Synchronization

/// The manager (Velox §4): ingests observations durably, learns each one online, and keeps the
/// user weights recoverable (snapshot plus replay of the log after it).
///
/// As a `Service` it snapshots changed users once enough observations have arrived since the
/// last snapshot (replay of the log is cheap, about a microsecond per observation, so snapshots
/// are for bounding restart time, not for durability), and once more after a graceful shutdown,
/// when the HTTP server has finished its in-flight requests.
public final class Manager: Service, Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// Snapshot once this many observations have been learned since the last snapshot.
        public var snapshotObservations: Int
        /// How often the snapshot policy is checked.
        public var snapshotCheckInterval: Duration
        /// The longest uid, item id or event id accepted, in Unicode scalars (code points, as
        /// JSON Schema's `maxLength` counts them in openapi.yaml).
        public var maxIdentifierLength: Int
        /// Versions kept per model after a retrain (the serving one and its parent always are).
        public var keepVersions: Int
        /// The staleness monitor of every serving version.
        public var monitor: QualityMonitor.Configuration
        /// Start a retrain by itself when the serving version goes stale.
        public var autoRetrain: Bool
        /// Fit each user's weights on their latest this-many ratings only (nil: all of them); older
        /// ratings still inform the item factors. Under drift, old ratings describe tastes that
        /// are gone; a window lets a retrain follow the change.
        public var retrainWindow: Int?
        /// Cores a retrain's ALS uses. One by default, so a retrain inside a serving process
        /// leaves the other core to requests.
        public var retrainThreads: Int
        /// Each serving state's prediction cache.
        public var predictionCache: PredictionCache.Configuration
        /// Each serving state's feature cache (none by default).
        public var featureCache: FeatureCacheConfiguration
        /// Exploring top-k answers and the decision log.
        public var exploration: Explorer.Configuration
        /// The most users per model whose full ridge state is kept in memory (the hot tier; see
        /// ``UserWeightStore``); every user's weights stay in memory regardless. `Int.max`: all
        /// users hot, loaded whole at startup (no tiering).
        public var hotUsers: Int
        /// After a start, make the users who were hot at the last snapshot hot again in the
        /// background (``Manager/warmStart(threads:)``), so their first observations need no rebuild.
        public var warmStart: Bool

        public init(snapshotObservations: Int = 500_000, snapshotCheckInterval: Duration = .seconds(1),
                    maxIdentifierLength: Int = 256, keepVersions: Int = 10, retrainThreads: Int = 1,
                    monitor: QualityMonitor.Configuration = .init(), autoRetrain: Bool = false, retrainWindow: Int? = nil,
                    predictionCache: PredictionCache.Configuration = .init(), featureCache: FeatureCacheConfiguration = .init(),
                    exploration: Explorer.Configuration = .init(), hotUsers: Int = 100_000, warmStart: Bool = true) {
            precondition(hotUsers >= 0, "hotUsers must not be negative")
            self.hotUsers = hotUsers
            self.warmStart = warmStart
            self.predictionCache = predictionCache
            self.featureCache = featureCache
            self.exploration = exploration
            self.retrainWindow = retrainWindow
            self.monitor = monitor
            self.autoRetrain = autoRetrain
            self.retrainThreads = retrainThreads
            self.snapshotObservations = snapshotObservations
            self.snapshotCheckInterval = snapshotCheckInterval
            self.maxIdentifierLength = maxIdentifierLength
            self.keepVersions = keepVersions
        }
    }

    public let registry: ModelRegistry
    /// Top-k answers under each model's exploration policy, logged as decisions.
    public let explorer: Explorer
    let decisions: DecisionLog
    let store: SQLiteStore
    let configuration: Configuration
    let logger: Logger
    /// The highest log sequence learned. Held while learning a batch, while serializing a
    /// snapshot chunk and while a new version is swapped in, so a snapshot row's state and
    /// sequence always agree and no observation is learned twice or skipped across a swap.
    let applied: Mutex<Int64>
    private let committer: Mutex<GroupCommitter?> = Mutex(nil)
    /// Retrain jobs, by id.
    let jobs = Mutex<(jobs: [Int: RetrainJob], nextID: Int)>(([:], 0))
    /// Retrains that failed (for metrics).
    let retrainFailures = Atomic<Int>(0)
    /// Retrains cancelled (for metrics).
    let retrainCancellations = Atomic<Int>(0)
    /// Observations learned since the manager started (for the snapshot policy).
    let learned = Atomic<Int>(0)
    let snapshotBase = Atomic<Int>(0)
    /// What the snapshots have done since the manager started.
    public let snapshotStatistics = SnapshotStatistics()

    /// Loads every model's serving version and restores its users: the last snapshot, then the
    /// log after it, learned in log order exactly as it was live.
    /// - Throws: ``StorageError`` when the store cannot be read.
    public init(store: SQLiteStore, configuration: Configuration = .init(), logger: Logger) throws {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        let decisions = DecisionLog(store: store, logger: logger, retention: configuration.exploration.decisionRetention)
        self.decisions = decisions
        var served: [ServedModel] = []
        let policies = try store.explorationPolicies()
        let competitions = try store.competitions()
        for record in try store.models() {
            // A version still `built` was being installed when the last process stopped.
            let unserved = try store.failUnservedVersions(model: record.name)
            if !unserved.isEmpty {
                logger.warning("versions never served (their retrain did not finish installing) marked failed", metadata: [
                    "model.name": "\(record.name)", "versions": "\(unserved)",
                ])
            }
            let clock = ContinuousClock()
            let start = clock.now
            let (state, _) = try ServingState.restore(
                model: record.name, version: record.servingVersion, store: store, monitor: configuration.monitor,
                predictions: PredictionCache(configuration: configuration.predictionCache), features: configuration.featureCache,
                hotUsers: configuration.hotUsers, warmStart: configuration.warmStart)
            let policy: ExplorationPolicy
            do { policy = try ExplorationPolicy.parse(policies[record.name] ?? "greedy") } catch {
                throw StorageError(.corrupt, "model \(record.name) has an unreadable exploration policy: \(error)")
            }
            let model = ServedModel(state: state, observations: try store.observationCount(model: record.name), exploration: policy,
                                    decisions: try store.decisionCount(model: record.name))
            if let record = competitions[record.name] {
                model.competition = try Self.restoreCompetition(record, of: model, store: store, decisions: decisions,
                                                                configuration: configuration)
            }
            served.append(model)
            logger.info("loaded model", metadata: [
                "model.name": "\(record.name)", "model.version": "\(record.servingVersion)",
                "model.users": "\(state.users.count)", "model.users.hot": "\(state.users.hotCount)",
                "duration": "\(clock.now - start)",
            ])
        }
        registry = ModelRegistry(models: served)
        explorer = Explorer(registry: registry, log: decisions, configuration: configuration.exploration)
        Self.returnFreedMemory()
        applied = Mutex(try store.lastSequence())
        let commit: @Sendable ([Observation]) throws -> [Int64] = { [store] in try store.append($0) }
        let committer = GroupCommitter(commit: commit) { [unowned self] batch in self.learn(batch) }
        self.committer.withLock { $0 = committer }
    }

    /// Hands memory freed by a large load (a start, a retrain) back to the system: glibc keeps
    /// freed chunks in its arenas, so without this the resident size stays at the load's peak.
    static func returnFreedMemory() {
        #if canImport(Glibc)
        // malloc_trim is glibc's (malloc.h, not in the Glibc module); RTLD_DEFAULT is a null handle.
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        #endif
    }

    /// Learns a committed batch in log order and advances the learned sequence. O(batch · d²).
    private func learn(_ batch: [LoggedObservation]) {
        var stale: [ServedModel] = []
        applied.withLock { last in
            for logged in batch {
                if let model = try? registry.model(logged.observation.model) {
                    do {
                        if try model.learn(logged) { stale.append(model) }
                    } catch {
                        // The observation is durable; the user stays cold and its next rebuild
                        // replays it from the log.
                        logger.error("could not rebuild a cold user's state; the observation is logged and will be learned at its next rebuild", metadata: [
                            "model.name": "\(model.name)", "user.uid": "\(logged.observation.uid)", "error": "\(error)",
                        ])
                    }
                }
                last = logged.seq
            }
        }
        learned.add(batch.count, ordering: .relaxed)
        for model in stale { wentStale(model) }
    }

    /// A serving version's loss rose past the threshold: say so, and retrain if asked to.
    func wentStale(_ model: ServedModel) {
        let quality = model.current.quality
        logger.warning("model is stale", metadata: [
            "model.name": "\(model.name)", "model.version": "\(model.version.number)",
            "loss.window": "\(quality.windowedLoss ?? .nan)", "loss.baseline": "\(quality.baseline ?? .nan)",
        ])
        guard configuration.autoRetrain else { return }
        do {
            _ = try startRetrain(model: model.name)
        } catch {
            logger.info("no automatic retrain", metadata: ["model.name": "\(model.name)", "reason": "\(error)"])
        }
    }

    var groupCommitter: GroupCommitter { committer.withLock { $0! } }

    /// Warms the hot tier (``Configuration/warmStart``), snapshots whenever
    /// ``Configuration/snapshotObservations`` observations have been learned since the last
    /// snapshot, and deletes decisions past their retention at start and then every minute; on
    /// graceful shutdown, stops the warm start, lets queued commits finish and snapshots once more.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            async let warmed = self.configuration.warmStart ? self.warmStart() : 0
            let clock = ContinuousClock()
            var pruned = clock.now - .seconds(60)
            while !Task.isCancelled {
                if clock.now - pruned >= .seconds(60) {
                    pruned = clock.now
                    self.decisions.pruneInBackground()
                }
                try? await Task.sleep(for: self.configuration.snapshotCheckInterval)
                if Task.isCancelled { break }
                let pending = self.learned.load(ordering: .relaxed) - self.snapshotBase.load(ordering: .relaxed)
                guard pending >= self.configuration.snapshotObservations else { continue }
                do {
                    let clock = ContinuousClock()
                    let start = clock.now
                    let saved = try await self.snapshotInBackground()
                    self.logger.info("snapshot saved", metadata: ["users": "\(saved)", "duration": "\(clock.now - start)"])
                } catch {
                    self.logger.error("snapshot failed; will retry", metadata: ["error": "\(error)"])
                }
            }
            _ = await warmed
        }
        try await shutdown()
    }

    /// Stops taking observations, waits for queued commits, and snapshots.
    public func shutdown() async throws {
        groupCommitter.close()
        await groupCommitter.drain()
        await decisions.flushed()
        let saved = try await snapshotInBackground()
        logger.info("snapshot saved on shutdown", metadata: ["users": "\(saved)"])
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
            versions: try store.versions(model: name), quality: state.quality, exploration: model.exploration,
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
        let model = try registry.model(name)
        return model.current.users.read(uid) { w in
            guard let w else { return UserInfo(uid: uid, observations: 0, runningLoss: nil, bootstrapped: true) }
            return UserInfo(uid: uid, observations: w.observations, runningLoss: w.runningLoss, bootstrapped: w.bootstrapped)
        }
    }

    /// Retrains that failed since the manager started.
    public var retrainFailureCount: Int { retrainFailures.load(ordering: .relaxed) }
    /// Retrains cancelled since the manager started.
    public var retrainCancellationCount: Int { retrainCancellations.load(ordering: .relaxed) }

    /// Failed writes of the decision log since the manager started.
    public var decisionLogFailureCount: Int { decisions.failures.load(ordering: .relaxed) }

    /// Decisions deleted by the retention since start.
    public var decisionsPrunedCount: Int { decisions.pruned.load(ordering: .relaxed) }

    /// Commits made by the group committer.
    public var commitCount: Int { groupCommitter.commits.load(ordering: .relaxed) }
}
