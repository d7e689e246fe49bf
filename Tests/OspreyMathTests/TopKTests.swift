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

struct BlockedScoringTests {
    /// The blocked (items-by-8, dimension-major) scan scores every item as the row-wise one does.
    @Test(arguments: [(1, 3), (13, 5), (40, 51), (37, 8)])
    func blockedScoresMatchRowScores(rows: Int, d: Int) {
        var rng = SplitMix64(seed: UInt64(rows * d))
        let s = VectorKernels.paddedStride(d)
        var table = [Float](repeating: 0, count: rows * s)
        for r in 0..<rows { for k in 0..<d { table[r * s + k] = Float(rng.nextGaussian()) } }
        let query = (0..<s).map { $0 < d ? Float(rng.nextGaussian()) : 0 }
        let offsets = (0..<rows).map { _ in Float(rng.nextGaussian()) }
        let blocks = (rows + 7) / 8
        let blocked = VectorKernels.blockRows(table, rows: rows, stride: s, dimension: d)
        let paddedOffsets = offsets + [Float](repeating: 0, count: blocks * 8 - rows)
        var expected = [Float](repeating: 0, count: rows)
        var got = [Float](repeating: 0, count: blocks * 8)
        table.withUnsafeBufferPointer { t in query.withUnsafeBufferPointer { q in offsets.withUnsafeBufferPointer { o in
            expected.withUnsafeMutableBufferPointer { VectorKernels.scoreRows(matrix: t.baseAddress!, stride: s, rows: rows, query: q.baseAddress!, offsets: o.baseAddress!, out: $0.baseAddress!) }
        } } }
        blocked.withUnsafeBufferPointer { b in query.withUnsafeBufferPointer { q in paddedOffsets.withUnsafeBufferPointer { o in
            let broadcast = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: d)
            defer { broadcast.deallocate() }
            VectorKernels.broadcastQuery(q.baseAddress!, dimension: d, into: broadcast)
            got.withUnsafeMutableBufferPointer { VectorKernels.scoreBlocks(blocked: b.baseAddress!, dimension: d, blocks: blocks, broadcast: broadcast, offsets: o.baseAddress!, out: $0.baseAddress!) }
        } } }
        for r in 0..<rows { #expect(abs(got[r] - expected[r]) <= 1e-4 * max(1, abs(expected[r]))) }
    }
}
