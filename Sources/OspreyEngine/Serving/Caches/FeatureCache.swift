import OspreyModel
import Synchronization

/// The feature cache of Velox §5: a feature function in front of another whose vectors are
/// costly to produce (computed feature functions: a network's embedding, a hashed feature
/// cross). It keeps the hottest items' vectors, padded to the stride, in contiguous slabs (one per
/// shard), evicting by the chosen policy, so a hot item costs a lookup and a short copy-free read
/// instead of a computation.
///
/// For the materialized table of a matrix-factorization model a lookup costs more than the table
/// read it would save (measured in BENCHMARKS.md), so a served model has none unless configured
/// (``FeatureCacheConfiguration``; `osprey serve --feature-cache`); it is the hook a computed
/// feature function goes through. A version's features never change, so a version's cache is
/// never stale; a new version starts a new one. Thread-safe: items are sharded over locks, and
/// `body` runs under its item's shard lock (keep it short: a dot product).
public final class FeatureCache<Base: FeatureFunction>: FeatureFunction, Sendable {
    /// One shard: its policy maps item rows to slots of its slab.
    final class Shard: @unchecked Sendable {
        let cache: PolicyCache<Int, Int32>
        let slab: UnsafeMutablePointer<Float>
        let offsets: UnsafeMutablePointer<Float>
        let capacity: Int
        var used = 0

        init(policy: EvictionPolicy, capacity: Int, stride: Int) {
            self.capacity = capacity
            cache = PolicyCache(policy, capacity: capacity)
            slab = .allocate(capacity: capacity * stride)
            offsets = .allocate(capacity: capacity)
        }

        deinit {
            slab.deallocate()
            offsets.deallocate()
        }
    }

    /// The feature function whose vectors are cached.
    public let base: Base
    /// Hits, misses, evictions and entries, carried on by the caches of the model's later states.
    public let metrics: CacheMetrics
    private let shards: StripedLocks<Shard>
    /// The item vectors held now, over every shard.
    private let entries = Atomic<Int>(0)

    /// A cache of up to about `capacity` item vectors (at least one per shard) in front of `base`.
    public init(_ base: Base, capacity: Int, policy: EvictionPolicy = .s3fifo, metrics: CacheMetrics = .init(countsStale: false)) {
        self.base = base
        self.metrics = metrics
        let perShard = max(1, capacity / StripedLocks<Shard>.stripeCount)
        shards = StripedLocks { Shard(policy: policy, capacity: perShard, stride: base.stride) }
    }

    /// The item vectors held now. O(1).
    public var count: Int { entries.load(ordering: .relaxed) }

    public var dimension: Int { base.dimension }
    public var stride: Int { base.stride }

    /// Calls `body` with item `item`'s cached vector and offset, producing them with the base
    /// function on a miss. O(1) on a hit; a miss adds the base function's cost and a copy.
    public func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        let stride = base.stride
        return try shards.withLock(number: item) { shard in
            if let slot = shard.cache.value(for: item) {
                metrics.hits.increment()
                return try body(shard.slab + Int(slot) * stride, shard.offsets[Int(slot)])
            }
            metrics.misses.increment()
            var slot: Int32
            if shard.used < shard.capacity {
                slot = Int32(shard.used)
                shard.used += 1
                _ = shard.cache.insert(slot, for: item)
                let n = entries.add(1, ordering: .relaxed).newValue
                if metrics.live.load(ordering: .relaxed) { metrics.entries.set(n) }
            } else {
                // Full: the entry evicted to make room gives up its slot to this item.
                slot = -1
                _ = shard.cache.insert(-1, for: item) { _, freed in slot = freed }
                precondition(slot >= 0, "a full cache evicts to insert")
                _ = shard.cache.insert(slot, for: item)
                metrics.evictions.increment()
            }
            let target = shard.slab + Int(slot) * stride
            shard.offsets[Int(slot)] = base.withFeatures(item: item) { f, offset in
                target.update(from: f, count: stride)
                return offset
            }
            return try body(target, shard.offsets[Int(slot)])
        }
    }
}

extension FeatureCache: CataloguedFeatures where Base: CataloguedFeatures {
    /// The items of the cached function.
    public var catalog: ItemCatalog { base.catalog }
}

/// The feature cache of each serving state: how many item vectors it holds (0: none, the default
/// for a materialized feature table) and how it evicts.
public struct FeatureCacheConfiguration: Sendable, Equatable {
    /// The most item vectors held; 0 serves without a feature cache.
    public var capacity: Int
    /// How entries are chosen for eviction.
    public var policy: EvictionPolicy

    /// The default capacity of the cache of vectors computed from attributes: 10,000 items,
    /// about 2 MB at d = 50.
    public static let computedDefault = 10_000

    public init(capacity: Int = 0, policy: EvictionPolicy = .s3fifo) {
        precondition(capacity >= 0, "a feature cache's capacity must not be negative")
        self.capacity = capacity
        self.policy = policy
    }
}
