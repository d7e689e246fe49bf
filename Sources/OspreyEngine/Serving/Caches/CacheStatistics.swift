import Synchronization

/// A cache's hit, miss and eviction counts (for `/metrics`), updated with relaxed atomics.
public final class CacheStatistics: Sendable {
    let hits = Atomic<Int>(0)
    let misses = Atomic<Int>(0)
    let stale = Atomic<Int>(0)
    let evictions = Atomic<Int>(0)

    public init() {}

    /// Lookups answered from the cache.
    public var hitCount: Int { hits.load(ordering: .relaxed) }
    /// Lookups not answered (including stale ones).
    public var missCount: Int { misses.load(ordering: .relaxed) }
    /// Misses that found an entry no longer valid (computed before the user's latest observation).
    public var staleCount: Int { stale.load(ordering: .relaxed) }
    /// Entries evicted to make room.
    public var evictionCount: Int { evictions.load(ordering: .relaxed) }
}
