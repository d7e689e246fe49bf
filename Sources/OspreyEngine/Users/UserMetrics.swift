import CoreMetrics
import Synchronization

/// The user tiers' metrics (swift-metrics), recorded where their events happen: rebuilds,
/// warm-start promotions and evictions as they occur; the user counts when a user is added, turns
/// hot or is evicted, and when a serving state is swapped in. A served model's instruments are
/// shared by the stores of all its serving states (``init(sharing:)``); only the serving state's
/// store records the counts (``live``), so a challenger's or a loading state's does not disturb
/// the gauges (docs/operations.md, "Metrics").
public final class UserMetrics: Sendable {
    /// Cold users whose full state was rebuilt (hot-tier misses).
    let rebuilds: Counter
    /// Of those, the rebuilds whose state had been read ahead (``UserWeightStore/prefetch(_:)``).
    let prefetchedRebuilds: Counter
    /// Cold users made hot by a warm start (``UserWeightStore/warm(_:)``), not by learning.
    let warmed: Counter
    /// Users whose full state was dropped from the hot tier.
    let evictions: Counter
    /// Users made hot in the storage of a replaced version's hot state (``HotStateRecycler``).
    let recycled: Counter
    /// Time spent rebuilding in the learning step, in seconds (reads ahead not included).
    let rebuildSeconds: FloatingPointCounter
    /// Users of the serving state: all, with their full state in memory, and compact only.
    let users: Meter, hot: Meter, cold: Meter
    /// Whether the store belongs to the serving state, and so records the user counts.
    let live: Atomic<Bool>

    /// The instruments of model `model` (no `model` dimension when nil). The default records
    /// nothing.
    public init(model: String? = nil, factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        let d = model.map { [("model", $0)] } ?? []
        rebuilds = Counter(label: "osprey_user_rebuilds_total", dimensions: d, factory: factory)
        prefetchedRebuilds = Counter(label: "osprey_user_rebuilds_prefetched_total", dimensions: d, factory: factory)
        warmed = Counter(label: "osprey_users_warmed_total", dimensions: d, factory: factory)
        evictions = Counter(label: "osprey_user_evictions_total", dimensions: d, factory: factory)
        recycled = Counter(label: "osprey_user_states_recycled_total", dimensions: d, factory: factory)
        rebuildSeconds = FloatingPointCounter(label: "osprey_user_rebuild_seconds_total", dimensions: d, factory: factory)
        users = Meter(label: "osprey_users", dimensions: d, factory: factory)
        hot = Meter(label: "osprey_users_hot", dimensions: d, factory: factory)
        cold = Meter(label: "osprey_users_cold", dimensions: d, factory: factory)
        live = Atomic(true)
    }

    /// The same instruments for another state's store, not live until that state serves.
    init(sharing other: UserMetrics) {
        rebuilds = other.rebuilds
        prefetchedRebuilds = other.prefetchedRebuilds
        warmed = other.warmed
        evictions = other.evictions
        recycled = other.recycled
        rebuildSeconds = other.rebuildSeconds
        users = other.users
        hot = other.hot
        cold = other.cold
        live = Atomic(false)
    }

    /// Records user counts (when live).
    func record(users all: Int, hot hotNow: Int) {
        guard live.load(ordering: .relaxed) else { return }
        set(users: all, hot: hotNow)
    }

    /// Sets the user gauges: all users, hot ones, and the cold rest.
    func set(users all: Int, hot hotNow: Int) {
        users.set(all)
        hot.set(hotNow)
        cold.set(all - hotNow)
    }
}
