extension QuantizedItemTable {
    /// Offers the exact top `selector.k` items for `query` to `selector`: the same items and
    /// Float32 scores as scoring every row with ``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)``
    /// and offering all of them (NaN scores never selected, ties by lower index).
    ///
    /// One pass over the quantized blocks computes approximate scores and error bounds (see the
    /// type's documentation) and keeps the k best lower bounds in a bounded heap; an item is a
    /// candidate only if its upper bound reaches the current k-th best lower bound (one SIMD
    /// compare per 8 items decides). Candidates still reaching the final bound, and the rows
    /// kept exact, are rescored with ``Int8Kernels/exactScore(row:query:dimension:offset:)``.
    /// `query` holds at least `dimension` floats; rows in `excluded` (ascending) are left out.
    ///
    /// Cost: O(items · d) reading d + 12 bytes per item, plus O(c · (d + log k)) for c candidates
    /// (typically k plus a few; up to every item when scores tie within the bound or k ≥ items),
    /// plus O(e) for e excluded rows. A non-finite query takes the exact O(items · d) scan.
    /// `kernel` chooses the instruction set of the integer scan (all give the same answer; the
    /// default is the widest this CPU has).
    public func selectTopK(
        query: UnsafePointer<Float>, excluding excluded: [Int], into selector: inout TopKSelector,
        kernel: Int8Kernels.Level = .best
    ) {
        guard rows > 0 else { return }
        let d = dimension
        var norm2 = 0.0
        var maxAbs: Float = 0
        for k in 0..<d {
            norm2 += Double(query[k]) * Double(query[k])
            maxAbs = max(maxAbs, abs(query[k]))
        }
        let norm = norm2.squareRoot()
        guard norm.isFinite, norm * maxNorm <= Self.hugeLimit else {
            return selectExactly(query: query, excluding: excluded, into: &selector)
        }
        let step = maxAbs / Float(queryLevels)
        withUnsafeTemporaryAllocation(of: SIMD8<Int16>.self, capacity: max(1, pairs)) { buffer in
            let queryPairs = buffer.baseAddress!
            // Quantize the query and measure what that cost: ‖q − σq̃‖ must stay within εQ.
            var error2 = 0.0
            let inverse = step > 0 ? Double(queryLevels) / Double(maxAbs) : 0
            let limit = Double(queryLevels)
            func level(_ k: Int) -> Int16 {
                guard k < d else { return 0 }
                let q = Double(query[k])
                // Any level is sound (the check below measures the actual error); nearest is tightest.
                let level = Self.roundedToInteger(min(limit, max(-limit, q * inverse)))
                let e = q - Double(step) * level
                error2 += e * e
                return Int16(level)
            }
            var levelSum = 0
            for p in 0..<pairs {
                let a = level(2 * p), b = level(2 * p + 1)
                queryPairs[p] = SIMD8(a, b, a, b, a, b, a, b)
                levelSum += Int(a) + Int(b)
            }
            guard error2.squareRoot() <= 0.99 * epsilon * norm else {
                return selectExactly(query: query, excluding: excluded, into: &selector)
            }
            scan(query: query, queryPairs: queryPairs, lowBias: Int32(truncatingIfNeeded: 128 * levelSum),
                 step: step, norm: Self.roundedUp(norm),
                 excluding: excluded, into: &selector, kernel: kernel)
        }
    }

    /// The bounded scan of ``selectTopK(query:excluding:into:)`` once the query is quantized.
    @inline(__always)
    func scan(query: UnsafePointer<Float>, queryPairs: UnsafePointer<SIMD8<Int16>>, lowBias: Int32, step: Float, norm: Float,
              excluding excluded: [Int], into selector: inout TopKSelector, kernel: Int8Kernels.Level) {
        let k = selector.k
        var lowerBounds = TopKSelector(k: k)
        var bound = -Float.infinity  // the k-th best lower bound so far
        var candidates: [ScoredIndex] = []  // (row, upper bound)
        candidates.reserveCapacity(4 * k + 32)
        var nextExcluded = 0
        let blockCount = (rows + 7) / 8
        let pairs = self.pairs, blockBytes = self.blockBytes
        blocks.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            // Bounds for a chunk of blocks at a time (8 KB, stays in L1), then the candidates.
            let chunk = 128
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 2 * chunk) { buffer in
                let upper = buffer.baseAddress!, lower = upper + chunk
                var first = 0
                while first < blockCount {
                    let count = min(chunk, blockCount - first)
                    upper.withMemoryRebound(to: Float.self, capacity: 8 * count) { u in
                        lower.withMemoryRebound(to: Float.self, capacity: 8 * count) { l in
                            Int8Kernels.blockBounds(
                                level: kernel, blocks: base + first * blockBytes, blockBytes: blockBytes,
                                blockCount: count, queryPairs: queryPairs, pairs: pairs, lowBias: lowBias,
                                step: step, norm: norm, slack: slack, upper: u, lower: l)
                        }
                    }
                    for i in 0..<count {
                        let uppers = upper[i]
                        // NaN (padding, exact rows) compares false.
                        guard any(uppers .>= SIMD8<Float>(repeating: bound)) else { continue }
                        let lowers = lower[i]
                        for lane in 0..<8 where uppers[lane] >= bound {
                            let row = (first + i) * 8 + lane
                            while nextExcluded < excluded.count && excluded[nextExcluded] < row { nextExcluded += 1 }
                            if nextExcluded < excluded.count && excluded[nextExcluded] == row { continue }
                            candidates.append(ScoredIndex(index: row, score: uppers[lane]))
                            lowerBounds.offer(index: row, score: lowers[lane])
                            bound = lowerBounds.threshold
                        }
                    }
                    first += count
                }
            }
        }
        exactTable.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            for c in candidates where c.score >= bound {
                selector.offer(index: c.index, score: Int8Kernels.exactScore(
                    row: t + c.index * stride, query: query, dimension: dimension, offset: offsets[c.index]))
            }
            for row in exactRows where excluded.sortedIndex(of: row) == nil {
                selector.offer(index: row, score: Int8Kernels.exactScore(
                    row: t + row * stride, query: query, dimension: dimension, offset: offsets[row]))
            }
        }
    }

    /// Scores every row exactly (the fallback for queries the bound cannot cover). O(items · d).
    func selectExactly(query: UnsafePointer<Float>, excluding excluded: [Int], into selector: inout TopKSelector) {
        var nextExcluded = 0
        exactTable.withUnsafeBufferPointer { table in
            let t = table.baseAddress!
            for row in 0..<rows {
                while nextExcluded < excluded.count && excluded[nextExcluded] < row { nextExcluded += 1 }
                if nextExcluded < excluded.count && excluded[nextExcluded] == row { continue }
                selector.offer(index: row, score: Int8Kernels.exactScore(
                    row: t + row * stride, query: query, dimension: dimension, offset: offsets[row]))
            }
        }
    }
}
