import Synchronization

/// The prediction cache of Velox §5: answers to `predict` and `topK` for one serving state (one
/// version with its users' weights), each tagged with the user's epoch — the number of that
/// user's observations it was computed after.
///
/// It is never stale: an answer is served only while the user's epoch is the one it was computed
/// at, so an observation for a user invalidates exactly that user's answers (lazily: the entries
/// fail the epoch check and are replaced or evicted), and a version swap starts a new cache with
/// the new serving state (repopulated from the old one's hottest keys, Velox §4.2). Sharded by key
/// hash over striped locks.
public final class PredictionCache: Sendable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// The most answers held (over all shards); 0 turns the cache off.
        public var capacity: Int
        /// How entries are chosen for eviction.
        public var policy: EvictionPolicy
        /// How many of the hottest keys a new version precomputes before it serves.
        public var repopulate: Int
        /// Cache single-item scores too, not only rankings. Off by default: with a materialized
        /// feature table a score (one dot product) costs less than a cache lookup (measured in
        /// BENCHMARKS.md); worth it when features are computed.
        public var scores: Bool

        public init(capacity: Int = 100_000, policy: EvictionPolicy = .s3fifo, repopulate: Int = 10_000, scores: Bool = false) {
            self.capacity = capacity
            self.policy = policy
            self.repopulate = repopulate
            self.scores = scores
        }
    }

    /// What a cached answer answers: a score for one item (by catalogue row), or a ranking request.
    public enum Query: Hashable, Sendable {
        case score(item: Int)
        case ranking(RankingQuery)
    }

    /// A top-k request as the API received it.
    public struct RankingQuery: Hashable, Sendable {
        public var k: Int
        public var items: [String]?
        public var exclude: [String]
        public var excludeObserved: Bool

        public init(k: Int, items: [String]?, exclude: [String], excludeObserved: Bool) {
            self.k = k
            self.items = items
            self.exclude = exclude
            self.excludeObserved = excludeObserved
        }
    }

    /// A cache key: one user's query. Its hash is computed once, when it is made: the shard and
    /// the shard's table both use it, so a lookup hashes the uid once.
    public struct Key: Hashable, Sendable {
        public let uid: String
        public let query: Query
        let hash: Int

        public init(uid: String, query: Query) {
            self.uid = uid
            self.query = query
            var h = Hasher()
            h.combine(uid)
            h.combine(query)
            hash = h.finalize()
        }

        public static func == (a: Key, b: Key) -> Bool { a.hash == b.hash && a.uid == b.uid && a.query == b.query }
        public func hash(into hasher: inout Hasher) { hasher.combine(hash) }
    }

    /// A cached answer.
    public enum Answer: Sendable {
        case score(Float)
        case ranking([(item: String, score: Float)])
    }

    struct Entry: Sendable {
        var epoch: Int
        /// The cache's ``generation`` when the answer's weights were read.
        var generation: Int
        var answer: Answer
    }

    /// One shard's cache.
    typealias Shard = PolicyCache<Key, Entry>

    public let configuration: Configuration
    /// Hits, misses, evictions and entries, carried on by the caches of successive serving states.
    public let metrics: CacheMetrics
    private let shards: StripedLocks<Shard>?
    /// The answers held now, over every shard.
    private let entries = Atomic<Int>(0)
    /// Raised by ``invalidateAll()``; an entry serves only in the generation it was computed in.
    private let generations = Atomic<Int>(0)

    /// An empty cache; `metrics` carries on those of the cache it replaces.
    public init(configuration: Configuration = .init(), metrics: CacheMetrics = .init()) {
        self.configuration = configuration
        self.metrics = metrics
        if configuration.capacity > 0 {
            let perShard = max(1, configuration.capacity / StripedLocks<Shard>.stripeCount)
            shards = StripedLocks { Shard(configuration.policy, capacity: perShard) }
        } else {
            shards = nil
        }
    }

    /// False when the capacity is 0.
    public var isEnabled: Bool { shards != nil }

    /// Whether answers to `query` are cached. O(1).
    public func caches(_ query: Query) -> Bool {
        guard shards != nil else { return false }
        if case .score = query { return configuration.scores }
        return true
    }

    /// The cache's generation now: read it before reading the user's weights, and store the
    /// answer computed from them with it (``store(_:for:epoch:generation:)``). O(1).
    public var generation: Int { generations.load(ordering: .acquiring) }

    /// Makes every answer held stale (lazily, as a new epoch does): after a user's erasure, whose
    /// epochs start again from nothing, so an answer computed before it can never serve after it
    /// (docs/operations.md, "Erasing a user"). Every user's answers go, as the cache is not
    /// indexed by user; they are computed again on their next request. O(1).
    public func invalidateAll() {
        generations.add(1, ordering: .releasing)
    }

    /// The answer cached for `key` at the user's current `epoch`, or nil. Counts a hit or a miss.
    /// O(1) plus hashing the key.
    public func lookup(_ key: Key, epoch: Int) -> Answer? {
        guard let shards, caches(key.query) else { return nil }
        let entry = shards.withLock(number: key.hash) { $0.value(for: key) }
        if let entry, entry.epoch == epoch, entry.generation == generation {
            metrics.hits.increment()
            return entry.answer
        }
        if entry != nil { metrics.stale?.increment() }
        metrics.misses.increment()
        return nil
    }

    /// Caches `answer`, computed from the user's weights at `epoch`, read in `generation` (nil:
    /// the current one). O(1) amortized.
    public func store(_ answer: Answer, for key: Key, epoch: Int, generation: Int? = nil) {
        guard let shards, caches(key.query) else { return }
        let generation = generation ?? self.generation
        let (evicted, added) = shards.withLock(number: key.hash) { shard in
            let before = shard.cache.count
            let evicted = shard.insert(Entry(epoch: epoch, generation: generation, answer: answer), for: key)
            return (evicted, shard.cache.count - before)
        }
        if evicted > 0 { metrics.evictions.increment(by: evicted) }
        if added != 0 {
            let n = entries.add(added, ordering: .relaxed).newValue
            if metrics.live.load(ordering: .relaxed) { metrics.entries.set(n) }
        }
    }

    /// About `limit` keys the eviction policy values most, spread evenly over the shards.
    /// O(capacity).
    public func hottest(_ limit: Int) -> [Key] {
        guard let shards, limit > 0 else { return [] }
        let perShard = (limit + StripedLocks<Shard>.stripeCount - 1) / StripedLocks<Shard>.stripeCount
        var keys: [Key] = []
        shards.forEach { keys += $0.cache.hottest(perShard) }
        return Array(keys.prefix(limit))
    }

    /// The answers held now. O(1).
    public var count: Int { entries.load(ordering: .relaxed) }
}
