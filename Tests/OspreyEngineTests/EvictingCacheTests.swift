import OspreyMath
import Testing
@testable import OspreyEngine

/// The eviction policies against a reference and on the patterns that tell them apart.
struct EvictingCacheTests {
    /// A plainly written LRU: an array ordered most recent first.
    struct ReferenceLRU {
        let capacity: Int
        var order: [Int] = []
        var values: [Int: Int] = [:]

        mutating func get(_ k: Int) -> Int? {
            guard let v = values[k] else { return nil }
            order.removeAll { $0 == k }
            order.insert(k, at: 0)
            return v
        }

        mutating func put(_ k: Int, _ v: Int) -> Int {
            var evicted = 0
            if values[k] == nil, values.count == capacity {
                values[order.removeLast()] = nil
                evicted = 1
            }
            order.removeAll { $0 == k }
            order.insert(k, at: 0)
            values[k] = v
            return evicted
        }
    }

    @Test func lruMatchesAReferenceOnRandomOperations() {
        let cache = LRUCache<Int, Int>(capacity: 17)
        var reference = ReferenceLRU(capacity: 17)
        var rng = SplitMix64(seed: 3)
        for step in 0..<20_000 {
            let key = Int(rng.next() % 40)
            if rng.next() % 3 == 0 {
                #expect(cache.insert(step, for: key) == reference.put(key, step))
            } else {
                #expect(cache.value(for: key) == reference.get(key))
            }
            #expect(cache.count == reference.values.count)
        }
        #expect(cache.hottest(5) == Array(reference.order.prefix(5)))
    }

    @Test(arguments: EvictionPolicy.allCases)
    func neverHoldsMoreThanItsCapacityAndKeepsLatestValues(_ policy: EvictionPolicy) {
        let cache: any EvictingCache<Int, Int> = policy.makeCache(capacity: 50)
        var rng = SplitMix64(seed: 5)
        var latest: [Int: Int] = [:]
        var evicted = 0
        for step in 0..<10_000 {
            let key = Int(rng.next() % 500)
            if let v = cache.value(for: key) { #expect(v == latest[key], "a hit returns the latest value") }
            evicted += cache.insert(step, for: key)
            latest[key] = step
            #expect(cache.count <= 50)
        }
        #expect(cache.count == 50)
        #expect(evicted > 0)
        cache.removeAll()
        #expect(cache.count == 0 && cache.value(for: 1) == nil)
    }

    /// A hot set, used over and over, then a scan of keys used once that is larger than the
    /// cache: LRU loses the hot set, S3-FIFO keeps it.
    @Test func s3fifoResistsAScanThatFlushesLRU() {
        func hotKeptAfterScan(_ policy: EvictionPolicy) -> Int {
            let cache: any EvictingCache<Int, Int> = policy.makeCache(capacity: 100)
            for _ in 0..<5 {
                for k in 0..<50 where cache.value(for: k) == nil { cache.insert(k, for: k) }
            }
            for k in 1000..<1300 where cache.value(for: k) == nil { cache.insert(k, for: k) }
            return (0..<50).filter { cache.value(for: $0) != nil }.count
        }
        #expect(hotKeptAfterScan(.lru) == 0)
        #expect(hotKeptAfterScan(.s3fifo) == 50)
    }

    @Test func s3fifoGhostReadmitsAReturningKeyToMain() {
        let cache = S3FIFOCache<Int, Int>(capacity: 10)
        for k in 0..<10 { cache.insert(k, for: k) }
        cache.insert(10, for: 10)          // evicts 0 from the small queue into the ghost queue
        #expect(cache.value(for: 0) == nil)
        cache.insert(0, for: 0)            // back within the ghost's memory: straight to main
        for k in 20..<40 { cache.insert(k, for: k) }
        #expect(cache.value(for: 0) == 0, "a key readmitted to main outlives a stream of new keys")
    }

    @Test func s3fifoHottestPutsTheMostUsedFirst() {
        let cache = S3FIFOCache<Int, Int>(capacity: 20)
        for k in 0..<10 { cache.insert(k, for: k) }
        for _ in 0..<3 { _ = cache.value(for: 7) }
        _ = cache.value(for: 3)
        #expect(Array(cache.hottest(2)) == [7, 3])
        #expect(cache.hottest(100).count == 10)
    }

    /// A queue's buffer starts small and doubles up to the capacity, not past it (an empty cache
    /// holds little, a full one no more than it needs), and grows on past it only if pushed to;
    /// the order survives every growth.
    @Test func aQueueGrowsToItsCapacityNotPastIt() {
        var q = FIFOQueue<Int>(capacity: 100)
        var sizes: [Int] = [q.allocated]
        for n in 0..<101 {
            q.push(n)
            if q.allocated != sizes.last { sizes.append(q.allocated) }
        }
        #expect(sizes == [16, 32, 64, 100, 200])
        #expect((0..<50).map { _ in q.pop() } == (0..<50).map { $0 })
        for n in 101..<150 { q.push(n) }
        #expect(q.allocated == 200 && q.count == 100)
        #expect(q.newestFirst == Array((50..<150).reversed()))
    }
}
