// The eviction-policy study (`osprey-bench --caches`; docs/operations.md, "Caches"): hit ratio
// and cost per request of LRU and S3-FIFO on Zipf-distributed request traces, with and without
// scans mixed in.

import MetricsTestKit
import OspreyEngine
import OspreyMath
import OspreyModel

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Samples ranks 0..<n with probability ∝ 1/(rank+1)^s, by binary search in the CDF.
struct ZipfSampler {
    let cdf: [Double]

    init(n: Int, exponent s: Double) {
        var cdf = [Double](repeating: 0, count: n)
        var total = 0.0
        for k in 0..<n {
            total += 1 / pow(Double(k + 1), s)
            cdf[k] = total
        }
        self.cdf = cdf.map { $0 / total }
    }

    func sample(_ rng: inout SplitMix64) -> Int {
        let u = rng.nextUniform()
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}

/// A computed feature function for the study: each item has 256 raw attributes, projected to
/// d = 50 by a fixed matrix (12,800 multiply-adds per item, about what a small embedding layer costs).
struct ProjectedFeatures: FeatureFunction {
    static let raw = 256
    let dimension = 50
    let stride = VectorKernels.paddedStride(50)
    let catalog: ItemCatalog
    let attributes: [Float]
    /// `dimension` rows of `raw` weights.
    let projection: [Float]

    init(items: Int, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        catalog = ItemCatalog(ids: (0..<items).map { "i\($0)" })
        attributes = (0..<(items * Self.raw)).map { _ in Float(rng.nextGaussian()) }
        projection = (0..<(50 * Self.raw)).map { _ in Float(rng.nextGaussian() / 16) }
    }

    func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: stride) { f in
            attributes.withUnsafeBufferPointer { a in
                projection.withUnsafeBufferPointer { p in
                    for k in 0..<stride {
                        f[k] = k < dimension ? VectorKernels.dot(p.baseAddress! + k * Self.raw, a.baseAddress! + item * Self.raw, count: Self.raw) : 0
                    }
                }
            }
            return try body(UnsafePointer(f.baseAddress!), 0)
        }
    }
}

enum CacheStudy {
    /// Nanoseconds per score `w · f(item)` over the item trace, reading features through `f`.
    static func nsPerScore(_ items: [Int], _ f: some FeatureFunction) -> Double {
        let w = [Float](repeating: 0.1, count: f.stride)
        var sink: Float = 0
        let elapsed = ContinuousClock().measure {
            w.withUnsafeBufferPointer { w in
                for item in items {
                    sink += f.withFeatures(item: item) { x, offset in offset + VectorKernels.dot(w.baseAddress!, x, count: f.stride) }
                }
            }
        }
        consume(sink)
        return (Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9) / Double(items.count)
    }

    /// The feature cache: a computed feature function and the materialized table, each read
    /// directly and through a `FeatureCache`, on Zipf(1.0) item popularity.
    static func featureCache(quick: Bool) {
        let items = 100_000
        let length = quick ? 200_000 : 1_000_000
        progress("feature cache …")
        var rng = SplitMix64(seed: 5)
        let zipf = ZipfSampler(n: items, exponent: 1.0)
        var permutation = Array(0..<items)
        permutation.shuffle(using: &rng)
        let trace = (0..<length).map { _ in permutation[zipf.sample(&rng)] }
        let computed = ProjectedFeatures(items: items, seed: 3)
        let s = VectorKernels.paddedStride(50)
        let table = (0..<(items * s)).map { i in i % s < 50 ? Float(rng.nextGaussian()) : 0 }
        let materialized = MaterializedFeatures(dimension: 50, ids: computed.catalog.ids, table: table, offsets: [Float](repeating: 0, count: items))
        emit("## Feature cache")
        emit()
        emit("\(length) scores `w · f(item)` for items drawn Zipf(1.0) over \(items) items (ranks shuffled), d = 50, single thread. *Computed*: each item's 256 raw attributes projected to 50 by a fixed matrix (12,800 multiply-adds). *Materialized*: the item-factor table (20 MB), read directly by row. Cached: the same function behind a `FeatureCache` of 10,000 items (10 % of the catalogue).")
        emit()
        emit(tableHeader(["feature function", "direct ns/score", "LRU cache ns/score", "S3-FIFO cache ns/score", "S3-FIFO hit ratio"]))
        func compare(_ name: String, _ f: some FeatureFunction) {
            let direct = nsPerScore(trace, f)
            let lru = FeatureCache(f, capacity: 10_000, policy: .lru)
            let s3 = FeatureCache(f, capacity: 10_000, policy: .s3fifo)
            let lruNs = nsPerScore(trace, lru), s3Ns = nsPerScore(trace, s3)
            // The hit ratio from a second, counted pass (the timed caches record no metrics).
            let counts = TestMetrics()
            let counted = FeatureCache(f, capacity: 10_000, policy: .s3fifo, metrics: CacheMetrics(countsStale: false, factory: counts))
            _ = nsPerScore(trace, counted)
            let hits = counts.counterTotal(label: "osprey_cache_hits_total"), misses = counts.counterTotal(label: "osprey_cache_misses_total")
            let hit = Double(hits) / Double(hits + misses)
            emit(row([name, fixed(direct, 0), fixed(lruNs, 0), fixed(s3Ns, 0), fixed(hit * 100, 1) + " %"]))
        }
        compare("computed (projection)", computed)
        compare("materialized table", materialized)
        emit()
    }

    /// A request trace of keys: Zipf(1.0) over `keys` distinct keys (ranks shuffled so popularity
    /// is unrelated to key order), optionally with a scan of `scanLength` keys never seen again
    /// after every `scanEvery` requests (a crawler, a batch export).
    static func trace(length: Int, keys: Int, exponent: Double, scanEvery: Int?, scanLength: Int, seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        let zipf = ZipfSampler(n: keys, exponent: exponent)
        var permutation = Array(0..<keys)
        permutation.shuffle(using: &rng)
        var out = [Int]()
        out.reserveCapacity(length)
        var nextScanKey = keys
        while out.count < length {
            if let every = scanEvery, out.count > 0, out.count % every == 0 {
                for _ in 0..<scanLength where out.count < length {
                    out.append(nextScanKey)
                    nextScanKey += 1
                }
            }
            out.append(permutation[zipf.sample(&rng)])
        }
        return out
    }

    /// Replays the trace through a cache (look up; on a miss, insert). Returns the hit ratio.
    static func hitRatio(_ trace: [Int], policy: EvictionPolicy, capacity: Int) -> Double {
        switch policy {
        case .lru: hitRatio(trace, LRUCache<Int, Int>(capacity: capacity))
        case .s3fifo: hitRatio(trace, S3FIFOCache<Int, Int>(capacity: capacity))
        }
    }

    static func hitRatio(_ trace: [Int], _ cache: some EvictingCache<Int, Int>) -> Double {
        var hits = 0
        for key in trace {
            if cache.value(for: key) != nil { hits += 1 } else { cache.insert(key, for: key) }
        }
        return Double(hits) / Double(trace.count)
    }

    /// Nanoseconds per request of the serving path's `PredictionCache` (sharded, String uids,
    /// epoch check) replaying the trace, keys mapped to (user, item) pairs.
    static func nsPerRequest(_ trace: [Int], policy: EvictionPolicy, capacity: Int) -> Double {
        let cache = PredictionCache(configuration: .init(capacity: capacity, policy: policy, scores: true))
        let uids = (0..<1000).map { "u\($0)" }
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for key in trace {
                let k = PredictionCache.Key(uid: uids[key % 1000], query: .score(item: key / 1000))
                if cache.lookup(k, epoch: 0) == nil { cache.store(.score(Float(key)), for: k, epoch: 0) }
            }
        }
        let ns = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
        return ns / Double(trace.count)
    }

    static func run(quick: Bool) {
        let keys = 1_000_000
        let length = quick ? 1_000_000 : 5_000_000
        emit("# Prediction cache: eviction policy study (osprey-bench --caches)")
        emit()
        emit("- Machine: `nproc` = \(Machine.processors), CPU: \(Machine.cpuModel); load average at start: \(Machine.loadAverage)")
        emit("- Traces of \(length) requests over \(keys) distinct keys, popularity Zipf with exponent 1.0 (ranks shuffled). *Scans*: after every 100,000 requests, 50,000 requests for keys never seen before (a crawler or batch job), interleaved with the Zipf traffic.")
        emit("- Each request: look up; on a miss, insert. Hit ratio is over all requests. *ns/request*: the serving path's `PredictionCache` (64 shards, String uid + item row keys, epoch check) replaying the same trace, single thread.")
        emit()
        emit(tableHeader(["trace", "capacity (share of keys)", "LRU hit ratio", "S3-FIFO hit ratio", "LRU ns/request", "S3-FIFO ns/request"]))
        for (name, scanEvery) in [("Zipf 1.0", nil as Int?), ("Zipf 1.0 + scans", 100_000)] {
            progress("trace: \(name) …")
            let t = trace(length: length, keys: keys, exponent: 1.0, scanEvery: scanEvery, scanLength: 50_000, seed: 11)
            for capacity in [1_000, 10_000, 100_000] {
                progress("  capacity \(capacity) …")
                let lru = hitRatio(t, policy: .lru, capacity: capacity)
                let s3 = hitRatio(t, policy: .s3fifo, capacity: capacity)
                let lruNs = nsPerRequest(t, policy: .lru, capacity: capacity)
                let s3Ns = nsPerRequest(t, policy: .s3fifo, capacity: capacity)
                emit(row([name, "\(capacity) (\(fixed(Double(capacity) / Double(keys) * 100, 1)) %)",
                          fixed(lru * 100, 1) + " %", fixed(s3 * 100, 1) + " %", fixed(lruNs, 0), fixed(s3Ns, 0)]))
            }
        }
        emit()
        featureCache(quick: quick)
    }
}
