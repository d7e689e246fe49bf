import Testing
@testable import OspreyMath

/// Top-k selection against a full sort.
struct TopKTests {
    @Test(arguments: [1, 10, 100])
    func matchesFullSort(k: Int) {
        var rng = SplitMix64(seed: UInt64(k))
        // Few distinct values, so ties are common and the tie-break is exercised.
        let scores = (0..<5_000).map { _ in Float(Int(rng.next() % 200)) / 10 }
        var selector = TopKSelector(k: k)
        scores.withUnsafeBufferPointer { selector.offer(scores: $0, base: 0) }
        let reference = scores.enumerated()
            .sorted { ($0.element, -$0.offset) > ($1.element, -$1.offset) }
            .prefix(k)
            .map { ScoredIndex(index: $0.offset, score: $0.element) }
        #expect(selector.sorted() == Array(reference))
    }

    @Test func fewerCandidatesThanKAndNaN() {
        var selector = TopKSelector(k: 5)
        selector.offer(index: 0, score: 1)
        selector.offer(index: 1, score: .nan)
        selector.offer(index: 2, score: 3)
        #expect(selector.sorted() == [ScoredIndex(index: 2, score: 3), ScoredIndex(index: 0, score: 1)])
    }

    @Test func dotMatchesScalarLoop() {
        var rng = SplitMix64(seed: 9)
        for n in [8, 16, 24, 56, 104] {
            let a = (0..<n).map { _ in Float(rng.nextGaussian()) }
            let b = (0..<n).map { _ in Float(rng.nextGaussian()) }
            var reference = 0.0
            for k in 0..<n { reference += Double(a[k]) * Double(b[k]) }
            let got = a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { VectorKernels.dot(pa.baseAddress!, $0.baseAddress!, count: n) } }
            #expect(abs(Double(got) - reference) < 1e-4)
        }
    }
}
