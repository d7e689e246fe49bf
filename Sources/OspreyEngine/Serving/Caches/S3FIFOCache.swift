/// S3-FIFO (Yang, Zhang, Qiu, Yue and Vinayak, "FIFO queues are all you need for cache
/// eviction", SOSP 2023): new keys enter a small FIFO (10% of the capacity); one that is hit
/// again before it leaves moves to the main FIFO, the rest are evicted and remembered in a ghost
/// queue, so a key that comes back soon goes straight to main. Main reinserts an entry that was
/// hit (decrementing its 2-bit frequency) instead of evicting it. A hit only bumps a counter, so
/// lookups do not reorder anything, and a scan of keys used once passes through the small queue
/// without flushing the main one. O(1) amortized per operation. Not thread-safe.
public final class S3FIFOCache<Key: Hashable & Sendable, Value: Sendable>: EvictingCache, @unchecked Sendable {
    struct Entry: Sendable {
        var value: Value
        /// Hits since insertion or the last pass through a queue's tail, capped at 3.
        var frequency: UInt8
    }

    public let capacity: Int
    let smallCapacity: Int
    /// A key in the small queue moves to main when it reaches its tail hit at least this many
    /// times (1, as in the paper and libCacheSim).
    let promotionThreshold: UInt8
    private var entries: [Key: Entry] = [:]
    private var small: FIFOQueue<Key>
    private var main: FIFOQueue<Key>
    /// Recently evicted keys with the tick they were evicted at (a key may appear in the ring more
    /// than once; only its latest tick counts).
    private var ghost: [Key: UInt64] = [:]
    private var ghostRing: FIFOQueue<(Key, UInt64)>
    private var tick: UInt64 = 0

    /// - Precondition: `capacity >= 1`.
    public init(capacity: Int, smallFraction: Double = 0.1, promotionThreshold: UInt8 = 1) {
        precondition(capacity >= 1, "a cache holds at least one entry")
        self.capacity = capacity
        smallCapacity = max(1, Int(Double(capacity) * smallFraction))
        self.promotionThreshold = promotionThreshold
        small = FIFOQueue(capacity: smallCapacity)
        main = FIFOQueue(capacity: capacity)
        ghostRing = FIFOQueue(capacity: capacity)
    }

    public var count: Int { entries.count }

    public func value(for key: Key) -> Value? {
        guard let i = entries.index(forKey: key) else { return nil }
        let f = entries.values[i].frequency
        if f < 3 { entries.values[i].frequency = f + 1 }
        return entries.values[i].value
    }

    @discardableResult
    public func insert(_ value: Value, for key: Key, evicted: (Key, Value) -> Void) -> Int {
        if let i = entries.index(forKey: key) {
            entries.values[i].value = value
            return 0
        }
        var count = 0
        while entries.count >= capacity { count += evict(evicted) }
        entries[key] = Entry(value: value, frequency: 0)
        if ghost.removeValue(forKey: key) != nil {
            main.push(key)
        } else {
            small.push(key)
        }
        return count
    }

    public func hottest(_ limit: Int) -> [Key] {
        let ranked = (main.newestFirst + small.newestFirst).enumerated()
            .sorted { (entries[$0.element]!.frequency, -$0.offset) > (entries[$1.element]!.frequency, -$1.offset) }
        return ranked.prefix(limit).map(\.element)
    }

    public func removeAll() {
        entries.removeAll(keepingCapacity: true)
        ghost.removeAll(keepingCapacity: true)
        small.removeAll(); main.removeAll(); ghostRing.removeAll()
    }

    /// Evicts one entry, from the small queue while it is over its share, else from main.
    private func evict(_ evicted: (Key, Value) -> Void) -> Int {
        if small.count >= smallCapacity || main.count == 0 { return evictSmall(evicted) }
        return evictMain(evicted)
    }

    private func evictSmall(_ evicted: (Key, Value) -> Void) -> Int {
        while let key = small.pop() {
            if entries[key]!.frequency >= promotionThreshold {
                entries[key]!.frequency = 0
                main.push(key)
                // Main overflowing makes the room: stop there, or this insert would evict twice.
                if main.count > capacity - smallCapacity, evictMain(evicted) > 0 { return 1 }
            } else {
                evicted(key, entries.removeValue(forKey: key)!.value)
                remember(key)
                return 1
            }
        }
        return 0
    }

    private func evictMain(_ evicted: (Key, Value) -> Void) -> Int {
        while let key = main.pop() {
            let f = entries[key]!.frequency
            if f > 0 {
                entries[key]!.frequency = f - 1
                main.push(key)
            } else {
                evicted(key, entries.removeValue(forKey: key)!.value)
                return 1
            }
        }
        return 0
    }

    private func remember(_ key: Key) {
        tick &+= 1
        ghost[key] = tick
        ghostRing.push((key, tick))
        while ghostRing.count > capacity - smallCapacity, let (old, t) = ghostRing.pop() {
            if ghost[old] == t { ghost[old] = nil }
        }
    }
}
