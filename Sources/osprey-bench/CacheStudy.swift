// The eviction-policy study of issue 4 (`osprey-bench --caches`): hit ratio and cost per request
// of LRU and S3-FIFO on Zipf-distributed request traces, with and without scans mixed in.

import OspreyEngine
import OspreyMath

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

enum CacheStudy {
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
        let cache = PredictionCache(configuration: .init(capacity: capacity, policy: policy))
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
    }
}
