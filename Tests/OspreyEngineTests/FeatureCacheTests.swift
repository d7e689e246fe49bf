import OspreyMath
import OspreyModel
import Synchronization
import Testing
@testable import OspreyEngine

/// A computed feature function: item row r ↦ (r, r+1, …) padded, offset r/2; counts its calls.
final class CountingFeatures: FeatureFunction {
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
        let base = CountingFeatures(items: 2000)
        let cache = FeatureCache(base, capacity: 64 * 8, policy: policy)
        var rng = SplitMix64(seed: 9)
        let accesses = 20_000
        for _ in 0..<accesses {
            // Mostly a hot set of 100 items, sometimes any of the 2000 (forcing evictions).
            let item = rng.next() % 4 == 0 ? Int(rng.next() % 2000) : Int(rng.next() % 100)
            let (first, padding, offset) = cache.withFeatures(item: item) { f, o in (f[0], f[cache.stride - 1], o) }
            #expect(first == Float(item) && padding == 0 && offset == Float(item) / 2)
        }
        let s = cache.statistics
        #expect(s.hitCount + s.missCount == accesses)
        #expect(base.calls.load(ordering: .relaxed) == s.missCount, "the base function runs on misses only")
        #expect(s.hitCount > accesses / 2 && s.evictionCount > 0)
        #expect(cache.dimension == base.dimension && cache.catalog.count == 2000)
    }
}
