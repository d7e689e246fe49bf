import OspreyMath
import OspreyModel
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// A computed feature function: item row r ↦ (r, r+1, …) padded, offset r/2; counts its calls.
final class CountingFeatures: CataloguedFeatures {
    let dimension = 5
    let stride = VectorKernels.paddedStride(5)
    let catalog: ItemCatalog
    let calls = Atomic<Int>(0)

    init(items: Int) { catalog = ItemCatalog(ids: (0..<items).map { "i\($0)" }) }

    func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        calls.add(1, ordering: .relaxed)
        let v = (0..<stride).map { $0 < dimension ? Float(item + $0) : 0 }
        return try v.withUnsafeBufferPointer { try body($0.baseAddress!, Float(item) / 2) }
    }
}

struct FeatureCacheTests {
    @Test(arguments: EvictionPolicy.allCases)
    func returnsTheBaseFunctionsVectorsAndComputesHotItemsOnce(_ policy: EvictionPolicy) {
        let base = CountingFeatures(items: 2000), metrics = RecordedMetrics()
        let cache = FeatureCache(base, capacity: 64 * 8, policy: policy, metrics: CacheMetrics(countsStale: false, factory: metrics.factory))
        var rng = SplitMix64(seed: 9)
        let accesses = 20_000
        for _ in 0..<accesses {
            // Mostly a hot set of 100 items, sometimes any of the 2000 (forcing evictions).
            let item = rng.next() % 4 == 0 ? Int(rng.next() % 2000) : Int(rng.next() % 100)
            let (first, padding, offset) = cache.withFeatures(item: item) { f, o in (f[0], f[cache.stride - 1], o) }
            #expect(first == Float(item) && padding == 0 && offset == Float(item) / 2)
        }
        let s = metrics.cache("osprey_cache")
        #expect(s.hits + s.misses == accesses)
        #expect(base.calls.load(ordering: .relaxed) == s.misses, "the base function runs on misses only")
        #expect(s.hits > accesses / 2 && s.evictions > 0)
        #expect(metrics.gauge("osprey_cache_entries") == Double(cache.count) && cache.count == 64 * 8)
        #expect(cache.dimension == base.dimension && cache.catalog.count == 2000)
    }

    /// A served model with a feature cache answers exactly as one without. The cache covers
    /// predict and candidate rankings (the whole-catalogue scan reads its own table); its counts
    /// continue across a retrain, whose new version starts with an empty cache.
    @Test func aServedModelsFeatureCacheAnswersAsTheTableDoes() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        defer { t.remove() }
        let cached = try Manager(stores: try t.reopen(), configuration: .init(
            predictionCache: .init(capacity: 0), featureCache: .init(capacity: 640)), metrics: metrics.engine, logger: quiet)
        let plain = try Manager(stores: try t.reopen(), configuration: .init(predictionCache: .init(capacity: 0)), logger: quiet)
        #expect(try plain.registry.model("demo").current.featureCache == nil)
        let p = Predictor(registry: cached.registry), q = Predictor(registry: plain.registry)
        let uids = Array(Set(t.ratings.map(\.uid)).sorted().prefix(5)) + ["stranger"]
        let items = (0..<10).map { "i\($0)" }
        for uid in uids {
            for item in items {
                #expect(try p.predict(model: "demo", uid: uid, item: item) == q.predict(model: "demo", uid: uid, item: item))
            }
            #expect(try p.topK(model: "demo", uid: uid, k: 3, items: items) == q.topK(model: "demo", uid: uid, k: 3, items: items))
            #expect(try p.topK(model: "demo", uid: uid, k: 3, items: nil) == q.topK(model: "demo", uid: uid, k: 3, items: nil))
        }
        let first = try #require(try cached.registry.model("demo").current.featureCache)
        let s = metrics.cache("osprey_feature_cache", model: "demo")
        #expect(s.misses == items.count && first.count == items.count, "each item's vector is produced once")
        #expect(s.hits == uids.count * items.count * 2 - items.count)
        #expect(s.evictions == 0)

        let job = try cached.retrainer.start(model: "demo")
        #expect(try await cached.retrainer.wait(forJob: job, model: "demo").phase == .done)
        let second = try #require(try cached.registry.model("demo").current.featureCache)
        #expect(second !== first && second.count == 0, "a new version's features start a new cache")
        #expect(metrics.gauge("osprey_feature_cache_entries", model: "demo") == 0)
        _ = try p.predict(model: "demo", uid: uids[0], item: "i1")
        #expect(metrics.cache("osprey_feature_cache", model: "demo").misses == items.count + 1 && second.count == 1,
                "the counts continue")
        #expect(metrics.gauge("osprey_feature_cache_entries", model: "demo") == 1)
    }
}
