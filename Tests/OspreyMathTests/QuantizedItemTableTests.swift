import Testing
@testable import OspreyMath

/// The reference: every row scored by the Float32 blocked scan, excluded rows dropped, NaN
/// dropped, then a full sort by (score descending, row ascending).
private func referenceTopK(table: [Float], offsets: [Float], rows: Int, stride: Int, d: Int,
                           query: [Float], k: Int, excluded: [Int]) -> [ScoredIndex] {
    let blocks = (rows + 7) / 8
    let blocked = VectorKernels.blockRows(table, rows: rows, stride: stride, dimension: d)
    let paddedOffsets = offsets + [Float](repeating: 0, count: blocks * 8 - rows)
    var scores = [Float](repeating: 0, count: max(1, blocks * 8))
    if rows > 0 {
        blocked.withUnsafeBufferPointer { b in query.withUnsafeBufferPointer { q in paddedOffsets.withUnsafeBufferPointer { o in
            let broadcast = UnsafeMutablePointer<SIMD8<Float>>.allocate(capacity: max(1, d))
            defer { broadcast.deallocate() }
            VectorKernels.broadcastQuery(q.baseAddress!, dimension: d, into: broadcast)
            scores.withUnsafeMutableBufferPointer {
                VectorKernels.scoreBlocks(blocked: b.baseAddress!, dimension: d, blocks: blocks, broadcast: broadcast,
                                          offsets: o.baseAddress!, out: $0.baseAddress!)
            }
        } } }
    }
    let skip = Set(excluded)
    var all: [ScoredIndex] = []
    for i in 0..<rows where !skip.contains(i) && !scores[i].isNaN {
        all.append(ScoredIndex(index: i, score: scores[i]))
    }
    all.sort { (a: ScoredIndex, b: ScoredIndex) -> Bool in a.score > b.score || (a.score == b.score && a.index < b.index) }
    return Array(all.prefix(k))
}

/// A random table of `rows` rows (`stride` floats, the first `d` used) and offsets.
private func randomTable(rows: Int, d: Int, seed: UInt64) -> (table: [Float], offsets: [Float], stride: Int) {
    var rng = SplitMix64(seed: seed)
    let s = VectorKernels.paddedStride(d)
    var table = [Float](repeating: 0, count: rows * s)
    for r in 0..<rows { for c in 0..<d { table[r * s + c] = Float(rng.nextGaussian() / Double(d).squareRoot()) } }
    let offsets = (0..<rows).map { _ in Float(rng.nextGaussian() * 0.1) }
    return (table, offsets, s)
}

private func randomQuery(d: Int, stride: Int, seed: UInt64) -> [Float] {
    var rng = SplitMix64(seed: seed)
    return (0..<stride).map { $0 < d ? Float(rng.nextGaussian()) : 0 }
}

/// Both scans of ``ItemScanTable`` (forced) and the quantized table alone, sorted.
private func allPaths(table: [Float], offsets: [Float], rows: Int, stride: Int, d: Int,
                      query: [Float], k: Int, excluded: [Int]) -> [[ScoredIndex]] {
    let tables = [
        ItemScanTable(table: table, offsets: offsets, rows: rows, stride: stride, dimension: d, quantizeFrom: 0),
        ItemScanTable(table: table, offsets: offsets, rows: rows, stride: stride, dimension: d, quantizeFrom: .max),
    ]
    return tables.map { t in
        var selector = TopKSelector(k: k)
        query.withUnsafeBufferPointer { t.selectTopK(query: $0.baseAddress!, excluding: excluded, into: &selector) }
        return selector.sorted()
    }
}

struct QuantizedItemTableTests {
    /// The exact rescoring kernel reproduces the blocked Float32 scan bit for bit.
    @Test(arguments: [1, 3, 4, 7, 8, 13, 50, 101])
    func exactScoreMatchesBlockedScanBits(d: Int) {
        let rows = 37
        let (table, offsets, s) = randomTable(rows: rows, d: d, seed: UInt64(d))
        let query = randomQuery(d: d, stride: s, seed: UInt64(d) + 100)
        let reference = referenceTopK(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: rows, excluded: [])
        for entry in reference {
            let got = table.withUnsafeBufferPointer { t in query.withUnsafeBufferPointer { q in
                Int8Kernels.exactScore(row: t.baseAddress! + entry.index * s, query: q.baseAddress!, dimension: d, offset: offsets[entry.index])
            } }
            #expect(got.bitPattern == entry.score.bitPattern)
        }
    }

    /// Random data, dimensions that are and are not multiples of 8 (and odd), catalogue sizes
    /// that are not multiples of the block, k from 1 to more than the catalogue.
    @Test(arguments: [(0, 5), (1, 3), (7, 1), (9, 13), (100, 8), (1_000, 50), (1_001, 101), (4_099, 10), (2_500, 51)])
    func equalsFullSort(rows: Int, d: Int) {
        let (table, offsets, s) = randomTable(rows: rows, d: d, seed: UInt64(rows * 131 + d))
        for (qi, k) in [1, 10, 64, rows + 5].enumerated() {
            let query = randomQuery(d: d, stride: s, seed: UInt64(rows + d + qi))
            let expected = referenceTopK(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: [])
            for got in allPaths(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: []) {
                #expect(got == expected, "rows \(rows) d \(d) k \(k)")
            }
        }
    }

    /// Near-ties: duplicated rows, rows one ulp apart, rows at the worst quantization error
    /// (halfway between levels), equal scores from different rows, an all-equal catalogue.
    @Test(arguments: [3, 8, 50])
    func adversarialNearTies(d: Int) {
        let s = VectorKernels.paddedStride(d)
        var rng = SplitMix64(seed: UInt64(d) * 7)
        var rowsList: [[Float]] = []
        var offsets: [Float] = []
        let base = (0..<d).map { _ in Float(rng.nextGaussian()) }
        for i in 0..<2_000 {
            var row = base
            switch i % 5 {
            case 0: break  // exact duplicate of `base`
            case 1: row[i % d] = row[i % d].nextUp  // one ulp away
            case 2: row[i % d] = row[i % d].nextDown
            case 3:
                // Halfway between two quantization levels of this row's scale.
                let scale = row.map(abs).max()! / 127
                row[(i / 5) % d] = (Float(Int(row[(i / 5) % d] / scale)) + 0.5) * scale
            default: row = row.map { $0 * (1 + Float(rng.nextGaussian()) * 1e-6) }
            }
            rowsList.append(row)
            offsets.append(i % 3 == 0 ? 0.25 : Float(0.25).nextUp)
        }
        var table = [Float](repeating: 0, count: rowsList.count * s)
        for (r, row) in rowsList.enumerated() { for c in 0..<d { table[r * s + c] = row[c] } }
        let rows = rowsList.count
        for (qi, k) in [1, 10, 100].enumerated() {
            // One query aligned with the common row (all scores nearly equal), one random.
            let query = qi == 0 ? base + [Float](repeating: 0, count: s - d) : randomQuery(d: d, stride: s, seed: UInt64(qi))
            let expected = referenceTopK(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: [])
            for got in allPaths(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: []) {
                #expect(got == expected, "d \(d) k \(k)")
            }
        }
        // Every row identical: the answer is the first k rows.
        let same = (0..<rows).flatMap { _ in base + [Float](repeating: 0, count: s - d) }
        let equalOffsets = [Float](repeating: 1, count: rows)
        let query = randomQuery(d: d, stride: s, seed: 5)
        let expected = referenceTopK(table: same, offsets: equalOffsets, rows: rows, stride: s, d: d, query: query, k: 10, excluded: [])
        #expect(expected.map(\.index) == Array(0..<10))
        for got in allPaths(table: same, offsets: equalOffsets, rows: rows, stride: s, d: d, query: query, k: 10, excluded: []) {
            #expect(got == expected)
        }
    }

    /// Rows with NaN, ±∞ or huge values or offsets are scored exactly (NaN never selected, ∞
    /// ranked as the Float32 scan ranks it); excluded rows (ascending, duplicates included) never appear.
    @Test func nonFiniteRowsAndExclusions() {
        let rows = 3_001, d = 13
        var (table, offsets, s) = randomTable(rows: rows, d: d, seed: 77)
        table[5 * s + 2] = .nan
        table[17 * s] = .infinity
        table[18 * s + 12] = -.infinity
        table[40 * s + 1] = 1e35  // huge but finite
        offsets[41] = .nan
        offsets[42] = .infinity
        offsets[43] = 1e31
        table[2_000 * s + 3] = Float.leastNonzeroMagnitude  // subnormal
        var rng = SplitMix64(seed: 3)
        let excludedRandom = (0..<300).map { _ in Int(rng.next() % UInt64(rows)) }
        let excludedSets: [[Int]] = [[], (excludedRandom + [42, 42, 17]).sorted(), [42, 43]]
        for excluded in excludedSets {
            for qi in 0..<4 {
                let query = randomQuery(d: d, stride: s, seed: UInt64(qi))
                let k = [1, 10, 64, 4_000][qi]
                let expected = referenceTopK(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: excluded)
                #expect(!expected.contains { $0.score.isNaN || excluded.contains($0.index) })
                for got in allPaths(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: k, excluded: excluded) {
                    #expect(got == expected, "k \(k) excluded \(excluded.count)")
                }
            }
        }
        let quantized = QuantizedItemTable(table: table, offsets: offsets, rows: rows, stride: s, dimension: d)
        #expect(quantized.exactRows == [5, 17, 18, 40, 41, 42, 43])
    }

    /// Queries the bounds cannot cover (NaN, ∞, huge) take the exact scan; zero and tiny queries
    /// are quantized. All answers equal the full sort.
    @Test func unusualQueries() {
        let rows = 1_500, d = 20
        let (table, offsets, s) = randomTable(rows: rows, d: d, seed: 11)
        var queries: [[Float]] = []
        queries.append([Float](repeating: 0, count: s))
        queries.append((0..<s).map { $0 < d ? Float.leastNonzeroMagnitude * Float($0 % 3) : 0 })
        queries.append((0..<s).map { $0 < d ? 1e29 * Float($0 % 5 - 2) : 0 })  // large, still quantized
        queries.append((0..<s).map { $0 < d ? 1e31 * Float($0 % 5 - 2) : 0 })  // could overflow: exact scan
        var withNaN = randomQuery(d: d, stride: s, seed: 1)
        withNaN[4] = .nan
        queries.append(withNaN)
        var withInfinity = randomQuery(d: d, stride: s, seed: 2)
        withInfinity[0] = .infinity
        queries.append(withInfinity)
        var oneLarge = [Float](repeating: 1e-30, count: s)
        oneLarge[3] = 1
        queries.append(oneLarge)
        for query in queries {
            let expected = referenceTopK(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: 10, excluded: [])
            for got in allPaths(table: table, offsets: offsets, rows: rows, stride: s, d: d, query: query, k: 10, excluded: []) {
                #expect(got == expected)
            }
        }
    }

    /// The integer kernel, at every width this machine runs, equals a scalar integer dot product
    /// for each item of every block, also at the extremes (levels ±127, query levels ±32767) where
    /// intermediate sums wrap, and for pair counts that leave every remainder of the wide loops.
    @Test(arguments: [false, true])
    func blockDotsMatchScalar(extremes: Bool) {
        var rng = SplitMix64(seed: extremes ? 22 : 21)
        for pairs in [1, 2, 3, 4, 5, 7, 8, 25, 60] {
            let blockCount = 3, headerBytes = 96
            let blockBytes = headerBytes + 16 * pairs
            var levels = [[Int]](repeating: [], count: 8 * blockCount)  // per item, per dimension
            for item in levels.indices {
                levels[item] = (0..<(2 * pairs)).map { _ in
                    extremes ? (rng.next() % 2 == 0 ? 127 : -127) : Int(rng.next() % 255) - 127
                }
            }
            let q = (0..<(2 * pairs)).map { k in
                extremes ? Int16(k % 3 == 0 ? -32_767 : 32_767) : Int16(truncatingIfNeeded: Int(rng.next() % 65_535) - 32_767)
            }
            // Headers: 8 scales, 8 radii, 8 offsets per block (one offset NaN, as for padding).
            var bytes = [UInt8](repeating: 0, count: blockCount * blockBytes)
            var header = [Float](repeating: 0, count: 24 * blockCount)
            for i in header.indices { header[i] = i % 24 == 23 ? .nan : Float(rng.nextGaussian()) }
            for b in 0..<blockCount {
                header[(24 * b)..<(24 * b + 24)].withUnsafeBytes { h in
                    for j in 0..<headerBytes { bytes[b * blockBytes + j] = h[j] }
                }
            }
            let (step, norm, slack): (Float, Float, Float) = (0.0123, 3.5, 1e-6)
            for item in levels.indices {
                let block = item / 8, lane = item % 8
                for k in 0..<(2 * pairs) {
                    let at = block * blockBytes + headerBytes + (k / 2) * 16 + 2 * (2 * (lane % 4) + k % 2) + lane / 4
                    bytes[at] = UInt8(truncatingIfNeeded: levels[item][k] + (lane < 4 ? 128 : 0))
                }
            }
            let queryPairs = (0..<pairs).map { p in
                SIMD8<Int16>(q[2 * p], q[2 * p + 1], q[2 * p], q[2 * p + 1], q[2 * p], q[2 * p + 1], q[2 * p], q[2 * p + 1])
            }
            let lowBias = Int32(truncatingIfNeeded: 128 * q.reduce(0) { $0 + Int($1) })
            for level in Int8Kernels.Level.supported {
                var dots = [Int32](repeating: 0, count: 8 * blockCount)
                bytes.withUnsafeBytes { b in
                    queryPairs.withUnsafeBufferPointer { qp in
                        dots.withUnsafeMutableBufferPointer { out in
                            Int8Kernels.blockDots(
                                level: level, blocks: b.baseAddress!, blockBytes: blockBytes, headerBytes: headerBytes,
                                blockCount: blockCount, queryPairs: qp.baseAddress!, pairs: pairs, lowBias: lowBias,
                                out: out.baseAddress!)
                        }
                    }
                }
                var upper = [Float](repeating: 0, count: 8 * blockCount), lower = upper
                bytes.withUnsafeBytes { b in
                    queryPairs.withUnsafeBufferPointer { qp in
                        Int8Kernels.blockBounds(
                            level: level, blocks: b.baseAddress!, blockBytes: blockBytes, blockCount: blockCount,
                            queryPairs: qp.baseAddress!, pairs: pairs, lowBias: lowBias, step: step, norm: norm,
                            slack: slack, upper: &upper, lower: &lower)
                    }
                }
                for item in levels.indices {
                    var expected = 0
                    for k in 0..<(2 * pairs) { expected += levels[item][k] * Int(q[k]) }
                    #expect(Int(dots[item]) == expected, "\(level), pairs \(pairs), item \(item)")
                    // The bounds in the order the error analysis assumes, each operation rounded.
                    let (block, lane) = (item / 8, item % 8)
                    let scale = header[24 * block + lane], radius = header[24 * block + 8 + lane]
                    let offset = header[24 * block + 16 + lane]
                    let approx = offset + (Float(dots[item]) * scale) * step
                    let error = norm * radius + slack
                    #expect(upper[item].bitPattern == (approx + error).bitPattern, "\(level), pairs \(pairs), item \(item)")
                    #expect(lower[item].bitPattern == (approx - error).bitPattern, "\(level), pairs \(pairs), item \(item)")
                }
            }
        }
    }

    /// Every kernel width returns the same top-k, items and score bits, on a real table.
    @Test func everyKernelWidthGivesTheSameTopK() {
        var rng = SplitMix64(seed: 5)
        let rows = 1_003, d = 50, stride = 56
        let table = (0..<(rows * stride)).map { i in i % stride < d ? Float(rng.nextGaussian()) : 0 }
        let offsets = (0..<rows).map { _ in Float(rng.nextGaussian()) }
        let quantized = QuantizedItemTable(table: table, offsets: offsets, rows: rows, stride: stride, dimension: d)
        for trial in 0..<8 {
            let query = (0..<stride).map { k in k < d ? Float(rng.nextGaussian()) * Float(trial + 1) : 0 }
            var answers: [[ScoredIndex]] = []
            for level in Int8Kernels.Level.supported {
                var selector = TopKSelector(k: 10)
                query.withUnsafeBufferPointer {
                    quantized.selectTopK(query: $0.baseAddress!, excluding: [3, 500], into: &selector, kernel: level)
                }
                answers.append(selector.sorted())
            }
            #expect(Set(answers.map { $0.map(\.index) }).count == 1)
            #expect(Set(answers.map { $0.map(\.score.bitPattern) }).count == 1)
        }
    }
}
