import CoreMetrics
import Synchronization

/// A cache's metrics (swift-metrics), recorded where its events happen: lookups answered or not,
/// entries evicted, entries held. A served model's instruments are shared by the caches of all
/// its serving states (``init(sharing:)``); only the serving state's cache records its entries
/// (``live``), so a challenger's or a loading state's does not disturb the gauge
/// (docs/operations.md, "Metrics").
public final class CacheMetrics: Sendable {
    /// Lookups answered from the cache.
    let hits: Counter
    /// Lookups not answered (including stale ones).
    let misses: Counter
    /// Misses that found an entry no longer valid (computed before the user's latest observation);
    /// nil for a cache whose entries cannot go stale.
    let stale: Counter?
    /// Entries evicted to make room.
    let evictions: Counter
    /// Entries held by the serving state's cache.
    let entries: Meter
    /// Whether the cache belongs to the serving state, and so records ``entries``.
    let live: Atomic<Bool>

    /// Instruments named `<prefix>_hits_total`, `_misses_total`, `_stale_total` (with
    /// `countsStale`), `_evictions_total` and `_entries`, with `dimensions`. The default records
    /// nothing.
    public init(prefix: String = "osprey_cache", dimensions: [(String, String)] = [], countsStale: Bool = true,
                factory: any MetricsFactory = NOOPMetricsHandler.instance) {
        hits = Counter(label: prefix + "_hits_total", dimensions: dimensions, factory: factory)
        misses = Counter(label: prefix + "_misses_total", dimensions: dimensions, factory: factory)
        stale = countsStale ? Counter(label: prefix + "_stale_total", dimensions: dimensions, factory: factory) : nil
        evictions = Counter(label: prefix + "_evictions_total", dimensions: dimensions, factory: factory)
        entries = Meter(label: prefix + "_entries", dimensions: dimensions, factory: factory)
        live = Atomic(true)
    }

    /// The same instruments for another state's cache, not live until that state serves.
    init(sharing other: CacheMetrics) {
        hits = other.hits
        misses = other.misses
        stale = other.stale
        evictions = other.evictions
        entries = other.entries
        live = Atomic(false)
    }
}
