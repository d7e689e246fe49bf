import OspreyModel

extension Manager {
    /// Settings.
    public struct Configuration: Sendable {
        /// Snapshot once this many observations have been learned since the last snapshot.
        public var snapshotObservations: Int
        /// How often the snapshot policy is checked.
        public var snapshotCheckInterval: Duration
        /// The longest uid, item id or event id accepted, in Unicode scalars (code points, as
        /// JSON Schema's `maxLength` counts them in openapi.yaml).
        public var maxIdentifierLength: Int
        /// The largest label magnitude accepted: an observation's label must lie in
        /// `-maxAbsLabel ... maxAbsLabel` (openapi.yaml's `Label` bounds state the default). At
        /// most Float's largest finite value (``InputRules/init(maxIdentifierLength:maxAbsLabel:)``
        /// traps otherwise when the manager starts).
        public var maxAbsLabel: Double
        /// Versions kept per model after a retrain (the serving one and its parent always are).
        public var keepVersions: Int
        /// The staleness monitor of every serving version.
        public var monitor: QualityMonitor.Configuration
        /// Start a retrain by itself when the serving version goes stale.
        public var autoRetrain: Bool
        /// How often a model may retrain by itself.
        public var autoRetrainLimit: AutoRetrainLimit
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
        /// Each serving state's cache of item vectors computed from attributes (Velox §5).
        public var computedFeatureCache: FeatureCacheConfiguration
        /// Exploring top-k answers and the decision log.
        public var exploration: Explorer.Configuration
        /// The most users per model whose full ridge state is kept in memory (the hot tier; see
        /// ``UserWeightStore``); every user's weights stay in memory regardless. `Int.max`: all
        /// users hot, loaded whole at startup (no tiering).
        public var hotUsers: Int
        /// The most users a version kept hot while it caught up with the log before serving (a
        /// retrain's or a rollback's; tiered, item updates off): the others are demoted and made
        /// hot again once it serves and the state it replaced is freed
        /// (``UserWeightStore/demote(toAtMost:)``; up to twice as many between demotions).
        /// Default: a 256th of ``hotUsers`` (the catch-up learns user by user, so a larger bound
        /// saves few rebuilds); as many as ``hotUsers`` or more: no bound (the catch-up learns in
        /// log order and keeps every user it learns hot).
        public var catchUpHotUsers: Int
        /// The observations such a catch-up learns user by user at a time, so that a demoted
        /// user is rebuilt once a span, not once for each of its observations (about 100 bytes
        /// an observation while held). Default 100,000.
        public var catchUpSpan: Int
        /// After a start, make the users who were hot at the last snapshot hot again in the
        /// background (``Manager/warmStart(threads:)``), so their first observations need no rebuild.
        public var warmStart: Bool
        /// Items learn online too (docs/architecture.md, "Items learn online"): every learned
        /// observation is also an exact ridge step of its item's row. Off: only users learn.
        public var itemUpdates: Bool
        /// With item updates, the most items per model whose ridge state is kept in memory (the
        /// hot items; ``ItemLearner``): after each snapshot the least recently learned of the
        /// others go cold, their state read back from the snapshot store when they next learn.
        /// `Int.max`: every item's state in memory. A cluster node holds every item's.
        public var hotItems: Int
        /// How often rows items learned online are published to what answers read; each
        /// publication invalidates the cached answers (docs/operations.md, "Items learn online").
        public var itemPublishInterval: Duration
        /// Where a retrain's batch steps (gather, train, store) run: nil, in this process; else in
        /// a worker this launcher starts (``RetrainWorker``), and this process only loads the
        /// version it stored and swaps it in. Imports and external trainers run here regardless.
        public var retrainWorker: (any RetrainWorkerLauncher)? = nil
        /// The most models the engine serves: `POST /v1/models` refuses one more (each costs its
        /// caches and θ, even empty).
        public var maxModels: Int

        public init(snapshotObservations: Int = 500_000, snapshotCheckInterval: Duration = .seconds(1),
                    maxIdentifierLength: Int = InputRules.defaultMaxIdentifierLength,
                    maxAbsLabel: Double = InputRules.defaultMaxAbsLabel, keepVersions: Int = 10, retrainThreads: Int = 1,
                    monitor: QualityMonitor.Configuration = .init(), autoRetrain: Bool = false,
                    autoRetrainLimit: AutoRetrainLimit = .init(), retrainWindow: Int? = nil,
                    predictionCache: PredictionCache.Configuration = .init(), featureCache: FeatureCacheConfiguration = .init(),
                    computedFeatureCache: FeatureCacheConfiguration = .init(capacity: FeatureCacheConfiguration.computedDefault),
                    exploration: Explorer.Configuration = .init(), hotUsers: Int = 100_000, warmStart: Bool = true,
                    itemUpdates: Bool = false, itemPublishInterval: Duration = .seconds(1), maxModels: Int = 100,
                    catchUpHotUsers: Int? = nil, catchUpSpan: Int = 100_000, hotItems: Int = 100_000) {
            precondition(hotItems > 0, "hotItems must be positive")
            self.hotItems = hotItems
            precondition(catchUpSpan > 0, "a catch-up span holds at least one observation")
            self.catchUpSpan = catchUpSpan
            self.maxModels = maxModels
            self.catchUpHotUsers = max(1, catchUpHotUsers ?? hotUsers / 256)
            self.itemUpdates = itemUpdates
            self.itemPublishInterval = itemPublishInterval
            self.computedFeatureCache = computedFeatureCache
            precondition(hotUsers >= 0, "hotUsers must not be negative")
            self.hotUsers = hotUsers
            self.warmStart = warmStart
            self.predictionCache = predictionCache
            self.featureCache = featureCache
            self.exploration = exploration
            self.retrainWindow = retrainWindow
            self.monitor = monitor
            self.autoRetrain = autoRetrain
            self.autoRetrainLimit = autoRetrainLimit
            self.retrainThreads = retrainThreads
            self.snapshotObservations = snapshotObservations
            self.snapshotCheckInterval = snapshotCheckInterval
            self.maxIdentifierLength = maxIdentifierLength
            self.maxAbsLabel = maxAbsLabel
            self.keepVersions = keepVersions
        }

        /// The identifier and label rules these settings give (``InputRules``).
        public var inputRules: InputRules {
            InputRules(maxIdentifierLength: maxIdentifierLength, maxAbsLabel: maxAbsLabel)
        }
    }

    /// The identifier and label rules of this engine, which every endpoint applies to its input.
    public var inputRules: InputRules { configuration.inputRules }
}
