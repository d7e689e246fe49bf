import CoreMetrics

/// The engine's metrics (swift-metrics), each recorded by the role where its event happens
/// (docs/operations.md, "Metrics"): the server passes its Prometheus factory; the default records
/// nothing. Per-model instruments are made once per model (``model(_:featureCache:)``) and carried
/// on across the model's serving states.
public struct EngineMetrics: Sendable {
    /// The factory every instrument is made from.
    public let factory: any MetricsFactory
    /// The observation log's group commits and the learning of what they committed.
    let ingest: IngestMetrics
    let snapshots: SnapshotMetrics
    let decisionLog: DecisionLogMetrics
    let itemExchange: ItemExchangeMetrics
    /// Retrain jobs that failed, and that were cancelled; automatic retrains held back by
    /// ``Manager/Configuration/autoRetrainLimit``.
    let retrainFailures: Counter, retrainCancellations: Counter, autoRetrainsLimited: Counter

    public init(factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        self.factory = factory
        ingest = IngestMetrics(factory: factory)
        snapshots = SnapshotMetrics(factory: factory)
        decisionLog = DecisionLogMetrics(factory: factory)
        itemExchange = ItemExchangeMetrics(factory: factory)
        retrainFailures = Counter(label: "osprey_retrain_failures_total", factory: factory)
        retrainCancellations = Counter(label: "osprey_retrain_cancellations_total", factory: factory)
        autoRetrainsLimited = Counter(label: "osprey_auto_retrains_limited_total", factory: factory)
    }

    /// The labels of the engine's timers (a Prometheus factory gives them buckets from 25 µs).
    public static let durationLabels = [IngestMetrics.commitDurationLabel, IngestMetrics.learnDurationLabel]

    /// The instruments of model `name`; feature-cache ones only when it has a feature cache.
    func model(_ name: String, featureCache: Bool) -> ModelMetrics {
        ModelMetrics(model: name, featureCache: featureCache, factory: factory)
    }
}

/// What the path of a durable observe costs, recorded by ``GroupCommitter`` per commit: the
/// log's commit (its fsync) and the learning of the batch (waiting for the learning lock
/// included). An observe waits for both, so a tail in either is an observe's tail, and the
/// two say which (docs/operations.md, "Metrics").
struct IngestMetrics: Sendable {
    /// Commits of the observation log (one per group of observes).
    let commits: Counter
    /// How long each commit took, and how long learning its batch took.
    let commitDuration: Timer, learnDuration: Timer
    static let commitDurationLabel = "osprey_log_commit_duration_seconds"
    static let learnDurationLabel = "osprey_learning_duration_seconds"

    init(factory: any MetricsFactory) {
        commits = Counter(label: "osprey_group_commits_total", factory: factory)
        commitDuration = Timer(label: Self.commitDurationLabel, factory: factory)
        learnDuration = Timer(label: Self.learnDurationLabel, factory: factory)
    }
}

/// What the snapshots do: recorded by ``Snapshotter`` as each one starts and ends. An operator
/// sees how often they run, how long they take and whether one is under way (it costs durable
/// observes some latency; BENCHMARKS.md).
struct SnapshotMetrics: Sendable {
    /// Snapshots that saved every changed user, and snapshots that failed (retried; the users
    /// they did not save stay changed).
    let completed: Counter, failures: Counter
    /// Users saved by the completed snapshots.
    let users: Counter
    /// Time spent in snapshots, finished or failed.
    let seconds: FloatingPointCounter
    /// Snapshots under way now.
    let inProgress: Meter

    init(factory: any MetricsFactory) {
        completed = Counter(label: "osprey_snapshots_total", factory: factory)
        failures = Counter(label: "osprey_snapshot_failures_total", factory: factory)
        users = Counter(label: "osprey_snapshot_users_total", factory: factory)
        seconds = FloatingPointCounter(label: "osprey_snapshot_seconds_total", factory: factory)
        inProgress = Meter(label: "osprey_snapshot_in_progress", factory: factory)
    }
}

/// What the decision log does: recorded by ``DecisionLog`` as it writes, fails, drops and prunes.
struct DecisionLogMetrics: Sendable {
    /// Decisions written, failed batch writes, decisions dropped (the oldest, when writes kept
    /// failing and the pending buffer was full), decisions deleted by the retention.
    let written: Counter, failures: Counter, dropped: Counter, pruned: Counter
    /// Decisions waiting to be written.
    let pending: Meter

    init(factory: any MetricsFactory) {
        written = Counter(label: "osprey_decisions_written_total", factory: factory)
        failures = Counter(label: "osprey_decision_log_write_failures_total", factory: factory)
        dropped = Counter(label: "osprey_decisions_dropped_total", factory: factory)
        pruned = Counter(label: "osprey_decisions_pruned_total", factory: factory)
        pending = Meter(label: "osprey_decisions_pending", factory: factory)
    }
}

/// What a cluster node's ``ItemExchange`` does: exchanges, the ones that could not reach the
/// store (retried at the next), and the item sums it published and read.
struct ItemExchangeMetrics: Sendable {
    let exchanges: Counter, failures: Counter, published: Counter, read: Counter
    /// Time spent exchanging: publishing, reading and solving the items again.
    let seconds: FloatingPointCounter

    init(factory: any MetricsFactory) {
        exchanges = Counter(label: "osprey_item_exchanges_total", factory: factory)
        failures = Counter(label: "osprey_item_exchange_failures_total", factory: factory)
        published = Counter(label: "osprey_item_sums_published_total", factory: factory)
        read = Counter(label: "osprey_item_sums_read_total", factory: factory)
        seconds = FloatingPointCounter(label: "osprey_item_exchange_seconds_total", factory: factory)
    }
}
