import OspreyMath
import Testing
@testable import OspreyModel

/// The whole-catalogue scan of ``MaterializedFeatures`` (Float32 blocks for a small catalogue,
/// the 8-bit table with bounds for a large one) ranks as the per-item `score` does.
struct MaterializedFeaturesScanTests {
    @Test(arguments: [100, 5_000])
    func scanMatchesPerItemScores(items: Int) {
        let d = 12
        let s = VectorKernels.paddedStride(d)
        var rng = SplitMix64(seed: UInt64(items))
        var table = [Float](repeating: 0, count: items * s)
        for i in 0..<items { for c in 0..<d { table[i * s + c] = Float(rng.nextGaussian()) } }
        let offsets = (0..<items).map { _ in Float(rng.nextGaussian()) }
        let features = MaterializedFeatures(dimension: d, ids: (0..<items).map { "item\($0)" }, table: table, offsets: offsets)
        #expect((features.scanTable.quantized != nil) == (items >= ItemScanTable.quantizationThreshold))
        let weights = (0..<s).map { $0 < d ? Float(rng.nextGaussian()) : 0 }
        let excluded = [3, 7, 7, 50]
        var selector = TopKSelector(k: 10)
        weights.withUnsafeBufferPointer { features.scanTable.selectTopK(query: $0.baseAddress!, excluding: excluded, into: &selector) }
        let got = selector.sorted()
        // `score` sums in another order, so compare scores to rounding (random scores are far apart).
        var all: [ScoredIndex] = []
        weights.withUnsafeBufferPointer { w in
            for i in 0..<items where !excluded.contains(i) {
                all.append(ScoredIndex(index: i, score: features.score(weights: w.baseAddress!, item: i)))
            }
        }
        all.sort { (a: ScoredIndex, b: ScoredIndex) -> Bool in a.score > b.score || (a.score == b.score && a.index < b.index) }
        let expected = Array(all.prefix(10))
        #expect(got.map(\.index) == expected.map(\.index))
        for (a, b) in zip(got, expected) { #expect(abs(a.score - b.score) <= 1e-4 * max(1, abs(b.score))) }
    }
}
