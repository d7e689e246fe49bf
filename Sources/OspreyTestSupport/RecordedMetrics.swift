import MetricsTestKit
import OspreyEngine

/// Metrics recorded in memory (swift-metrics' ``TestMetrics``), for tests that check the engine
/// records each event where it happens: pass ``engine`` to a `Manager` (or ``factory`` to a
/// component), then read the counters and gauges by name.
public struct RecordedMetrics: Sendable {
    public let factory = TestMetrics()

    public init() {}

    /// Engine metrics recording here.
    public var engine: EngineMetrics { EngineMetrics(factory: factory) }

    /// Counter `label` (of model `model`, when given): its total, 0 when never made.
    public func count(_ label: String, model: String? = nil) -> Int {
        Int(factory.counterTotal(label: label, dimensions: model.map { [("model", $0)] } ?? []))
    }

    /// Gauge `label` (of model `model`, when given): its last value, nil when never set.
    public func gauge(_ label: String, model: String? = nil) -> Double? {
        factory.meters(label: label, dimensions: model.map { [("model", $0)] } ?? []).first?.lastValue
    }

    /// A cache's counts (`prefix`: `osprey_prediction_cache`, `osprey_feature_cache`, or
    /// `osprey_cache` for a cache made without dimensions).
    public func cache(_ prefix: String, model: String? = nil) -> CacheCounts {
        CacheCounts(hits: count(prefix + "_hits_total", model: model), misses: count(prefix + "_misses_total", model: model),
                    stale: count(prefix + "_stale_total", model: model), evictions: count(prefix + "_evictions_total", model: model))
    }

    /// The user tiers' counts.
    public func users(model: String? = nil) -> UserCounts {
        UserCounts(rebuilds: count("osprey_user_rebuilds_total", model: model),
                   prefetchedRebuilds: count("osprey_user_rebuilds_prefetched_total", model: model),
                   warmed: count("osprey_users_warmed_total", model: model),
                   evictions: count("osprey_user_evictions_total", model: model))
    }

    public struct CacheCounts: Equatable, Sendable {
        public let hits, misses, stale, evictions: Int

        public init(hits: Int, misses: Int, stale: Int, evictions: Int) {
            (self.hits, self.misses, self.stale, self.evictions) = (hits, misses, stale, evictions)
        }
    }

    public struct UserCounts: Equatable, Sendable {
        public let rebuilds, prefetchedRebuilds, warmed, evictions: Int
    }
}
