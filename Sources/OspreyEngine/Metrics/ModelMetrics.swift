import CoreMetrics
import OspreyModel
import Synchronization

/// One served model's metrics (swift-metrics, dimension `model`), recorded where their events
/// happen: observations as they are learned, decisions as they are logged, feedback as it is
/// credited, the version and its sizes when a serving state is swapped in, the quality monitor's
/// losses after each learned batch (docs/operations.md, "Metrics").
final class ModelMetrics: Sendable {
    /// Observations of the model in the log; top-k decisions logged; observations that named one.
    let observations: Counter, decisions: Counter, feedback: Counter
    /// The serving version's number and catalogue size.
    let version: Meter, items: Meter
    /// 1 when the serving version has gone stale, else 0.
    let stale: Meter
    /// With item updates: the item states held and the cold ones (``ItemLearner``), and the cold
    /// states that could not be read when their item was to learn.
    let itemsHot: Meter, itemsCold: Meter, itemReadFailures: Meter
    /// The instruments of the serving states' caches and users (each state records through its
    /// own copies: ``forState()``).
    let predictions: CacheMetrics, features: CacheMetrics, users: UserMetrics
    /// The cache of item vectors computed from attributes.
    let computed: CacheMetrics
    let factory: any MetricsFactory
    let dimensions: [(String, String)]
    /// The monitor's losses, made at their first value (a loss not yet measured is not reported
    /// as 0): windowed prequential, validation, exploration.
    private let losses = Mutex<[String: Meter]>([:])

    init(model: String, featureCache: Bool, factory: any MetricsFactory) {
        let d = [("model", model)]
        self.factory = factory
        dimensions = d
        observations = Counter(label: "osprey_observations_total", dimensions: d, factory: factory)
        decisions = Counter(label: "osprey_decisions_total", dimensions: d, factory: factory)
        feedback = Counter(label: "osprey_decision_feedback_total", dimensions: d, factory: factory)
        version = Meter(label: "osprey_model_version", dimensions: d, factory: factory)
        items = Meter(label: "osprey_items", dimensions: d, factory: factory)
        stale = Meter(label: "osprey_model_stale", dimensions: d, factory: factory)
        itemsHot = Meter(label: "osprey_items_hot", dimensions: d, factory: factory)
        itemsCold = Meter(label: "osprey_items_cold", dimensions: d, factory: factory)
        itemReadFailures = Meter(label: "osprey_item_state_read_failures", dimensions: d, factory: factory)
        predictions = CacheMetrics(prefix: "osprey_prediction_cache", dimensions: d, factory: factory)
        features = featureCache
            ? CacheMetrics(prefix: "osprey_feature_cache", dimensions: d, countsStale: false, factory: factory)
            : CacheMetrics(countsStale: false)
        computed = CacheMetrics(prefix: "osprey_computed_feature_cache", dimensions: d, countsStale: false, factory: factory)
        users = UserMetrics(model: model, factory: factory)
    }

    /// Records where the serving state's item states are: after a swap and after each snapshot.
    func record(items learner: ItemLearner) {
        let (hot, cold) = learner.counts
        itemsHot.set(hot)
        itemsCold.set(cold)
        itemReadFailures.set(learner.unreadableColdStates)
    }

    /// Records the quality monitor's state: staleness and each loss measured so far.
    func record(quality: QualityMonitor) {
        stale.set(quality.stale ? 1 : 0)
        let values = [("osprey_prequential_loss", quality.windowedLoss), ("osprey_validation_loss", quality.validationLoss),
                      ("osprey_exploration_loss", quality.explorationLoss)]
        losses.withLock { meters in
            for case let (label, value?) in values {
                let meter = meters[label] ?? Meter(label: label, dimensions: dimensions, factory: factory)
                meters[label] = meter
                meter.set(value)
            }
        }
    }

    /// The instruments for a new serving state of the model (its caches and users): they count
    /// into the model's series, but record their sizes only once the state serves
    /// (``ServingState/setLive(_:)``). A challenger's counts add to the model's.
    func forState() -> StateMetrics {
        StateMetrics(predictions: CacheMetrics(sharing: predictions), features: CacheMetrics(sharing: features),
                     computed: CacheMetrics(sharing: computed), users: UserMetrics(sharing: users))
    }

    /// One serving state's instruments (``forState()``).
    struct StateMetrics {
        var predictions: CacheMetrics, features: CacheMetrics, computed: CacheMetrics, users: UserMetrics
    }

    /// Records what a serving state swapped in serves: its version, catalogue, users, caches and
    /// quality.
    func record(serving state: ServingState) {
        version.set(state.version.number)
        items.set(state.version.features.catalog.count)
        users.set(users: state.users.count, hot: state.users.hotCount)
        if let learner = state.itemLearner { record(items: learner) }
        predictions.entries.set(state.predictions.count)
        if let cache = state.featureCache { features.entries.set(cache.count) }
        if let cache = state.features.computedCache { computed.entries.set(cache.count) }
        record(quality: state.quality)
    }
}

/// A competition's metrics (dimensions `model` and `version`), recorded as users are allocated,
/// decisions made and feedback credited; removed when the competition ends.
final class CompetitionMetrics: Sendable {
    /// One version's instruments.
    struct Arm: Sendable {
        /// The reward sum is a gauge: rewards (labels) may be negative, which a counter refuses.
        let users: Meter, decisions: Counter, feedback: Counter, reward: Meter
    }

    private let model: String
    private let factory: any MetricsFactory
    private let arms = Mutex<[Int: Arm]>([:])
    /// The challenger's share of new users (``Competition/challengerShare(champion:)``).
    let share: Meter

    init(model: String, factory: any MetricsFactory) {
        self.model = model
        self.factory = factory
        share = Meter(label: "osprey_competition_challenger_share", dimensions: [("model", model)], factory: factory)
    }

    /// Version `version`'s instruments, made at first use. O(1).
    func arm(_ version: Int) -> Arm {
        arms.withLock { arms in
            if let arm = arms[version] { return arm }
            let d = [("model", model), ("version", String(version))]
            let arm = Arm(users: Meter(label: "osprey_competition_users", dimensions: d, factory: factory),
                          decisions: Counter(label: "osprey_competition_decisions_total", dimensions: d, factory: factory),
                          feedback: Counter(label: "osprey_competition_feedback_total", dimensions: d, factory: factory),
                          reward: Meter(label: "osprey_competition_reward_sum", dimensions: d, factory: factory))
            arms[version] = arm
            return arm
        }
    }

    /// Removes every instrument: the competition has ended.
    func destroy() {
        let all = arms.withLock { arms in
            defer { arms = [:] }
            return Array(arms.values)
        }
        for arm in all {
            arm.users.destroy()
            arm.decisions.destroy()
            arm.feedback.destroy()
            arm.reward.destroy()
        }
        share.destroy()
    }
}
