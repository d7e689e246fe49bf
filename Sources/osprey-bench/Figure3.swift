import OspreyMath

/// Figure 3 of the Velox paper: latency of a top-k query (k = 10) against the candidate-set
/// size, on the serving path: the item table laid out in blocks of 8 items
/// (`VectorKernels.blockRows`), scored 256 items at a time with `VectorKernels.scoreBlocks`,
/// each chunk offered to a `TopKSelector`. The baseline scores the row-major table with
/// `VectorKernels.scoreRows`, then sorts all (score, index) pairs. The new path scans the 8-bit
/// `QuantizedItemTable` with error bounds and rescores the few candidates exactly
/// (`QuantizedItemTable.selectTopK`); its answer must equal the Float32 path's bit for bit.
enum Figure3 {
    static let k = 10
    static let block = 256
    static let queryCount = 16

    /// The benchmarks of one (d, n) point.
    struct Case {
        let d: Int
        let n: Int
        /// Scoring only (blocks of 256 into a buffer), no selection.
        let scoreOnly: Benchmark
        /// Scoring + TopKSelector + sorted().
        let topK: Benchmark
        /// Scoring all n + full sort of (score, index) pairs + first k.
        let fullSort: Benchmark
        /// The quantized scan with bounds + exact rescoring of candidates (`selectTopK`) + sorted().
        let quantized: Benchmark
        /// The top-k answer equals the first k of the full sort (for every query).
        let agrees: Bool
        /// The quantized path's answer equals the Float32 blocked path's exactly (items and score bits).
        let quantizedAgrees: Bool
        /// Bytes per item: Float32 blocked table + padded offsets; quantized blocks.
        let blockedBytesPerItem: Double
        let quantizedBytesPerItem: Double
        var all: [Benchmark] { [scoreOnly, topK, quantized, fullSort] }
    }

    /// A random item table, item biases (the `offsets`) and a few queries.
    final class Data {
        let d: Int, n: Int, stride: Int
        let table: UnsafeMutablePointer<Float>
        let bias: UnsafeMutablePointer<Float>
        let queries: UnsafeMutablePointer<Float>
        /// The table in blocks of 8 items, dimension-major, and the biases padded to match.
        let blocked: [Float]
        let blockedBias: [Float]
        /// The table quantized to 8 bits with per-item bounds (the new serving path).
        let quantized: QuantizedItemTable

        init(d: Int, n: Int, seed: UInt64) {
            self.d = d
            self.n = n
            stride = VectorKernels.paddedStride(d)
            table = .allocate(capacity: n * stride)
            table.initialize(repeating: 0, count: n * stride)
            bias = .allocate(capacity: n)
            queries = .allocate(capacity: Figure3.queryCount * stride)
            queries.initialize(repeating: 0, count: Figure3.queryCount * stride)
            var rng = SplitMix64(seed: seed)
            let scale = 1 / Double(d).squareRoot()
            for i in 0..<n {
                for c in 0..<d { table[i * stride + c] = Float(rng.nextGaussian() * scale) }
                bias[i] = Float(rng.nextGaussian() * 0.1)
            }
            for q in 0..<Figure3.queryCount {
                for c in 0..<d { queries[q * stride + c] = Float(rng.nextGaussian()) }
            }
            blocked = VectorKernels.blockRows(Array(UnsafeBufferPointer(start: table, count: n * stride)), rows: n, stride: stride, dimension: d)
            blockedBias = Array(UnsafeBufferPointer(start: bias, count: n)) + [Float](repeating: 0, count: (n + 7) / 8 * 8 - n)
            quantized = QuantizedItemTable(
                table: Array(UnsafeBufferPointer(start: table, count: n * stride)),
                offsets: Array(UnsafeBufferPointer(start: bias, count: n)), rows: n, stride: stride, dimension: d)
        }

        /// Scores items `base..<base + rows` (base a multiple of 8) into `out` with the blocked kernel.
        @inline(__always)
        func scoreBlocked(base: Int, rows: Int, query: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
            withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: d) { broadcast in
                VectorKernels.broadcastQuery(query, dimension: d, into: broadcast.baseAddress!)
                blocked.withUnsafeBufferPointer { b in
                    blockedBias.withUnsafeBufferPointer { o in
                        VectorKernels.scoreBlocks(
                            blocked: b.baseAddress! + base * d, dimension: d, blocks: (rows + 7) / 8,
                            broadcast: broadcast.baseAddress!, offsets: o.baseAddress! + base, out: out)
                    }
                }
            }
        }

        deinit {
            table.deallocate()
            bias.deallocate()
            queries.deallocate()
        }
    }

    /// Top-k with the bounded heap, scoring blocks of 256 into `buffer`.
    @inline(__always)
    static func topK(_ data: Data, query: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>) -> [ScoredIndex] {
        var selector = TopKSelector(k: k)
        var base = 0
        while base < data.n {
            let rows = min(block, data.n - base)
            data.scoreBlocked(base: base, rows: rows, query: query, out: buffer)
            selector.offer(scores: UnsafeBufferPointer(start: buffer, count: rows), base: base)
            base += rows
        }
        return selector.sorted()
    }

    /// Top-k with the quantized scan and exact rescoring of the candidates.
    @inline(__always)
    static func quantizedTopK(_ data: Data, query: UnsafePointer<Float>, kernel: Int8Kernels.Level = .best) -> [ScoredIndex] {
        var selector = TopKSelector(k: k)
        data.quantized.selectTopK(query: query, excluding: [], into: &selector, kernel: kernel)
        return selector.sorted()
    }

    /// Scores every item into `all` (blocks of 256), then sorts all pairs; returns the first k.
    @inline(__always)
    static func fullSort(_ data: Data, query: UnsafePointer<Float>, all: UnsafeMutablePointer<Float>) -> [ScoredIndex] {
        var base = 0
        while base < data.n {
            let rows = min(block, data.n - base)
            VectorKernels.scoreRows(
                matrix: data.table + base * data.stride, stride: data.stride, rows: rows,
                query: query, offsets: data.bias + base, out: all + base)
            base += rows
        }
        var pairs = [(Float, Int)]()
        pairs.reserveCapacity(data.n)
        for i in 0..<data.n { pairs.append((all[i], i)) }
        let sorted = pairs.sorted { $0.0 > $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        return sorted.prefix(k).map { ScoredIndex(index: $0.1, score: $0.0) }
    }

    /// Scratch buffers and the query cursor shared by one case's benchmarks.
    final class Scratch {
        let buffer: UnsafeMutablePointer<Float>
        let all: UnsafeMutablePointer<Float>
        var query = 0
        init(n: Int) {
            buffer = .allocate(capacity: Figure3.block)
            all = .allocate(capacity: n)
        }
        deinit {
            buffer.deallocate()
            all.deallocate()
        }
    }

    static func make(d: Int, n: Int) -> Case {
        let data = Data(d: d, n: n, seed: 0xF16_3000 &+ UInt64(d * 1_000_003 + n))
        let scratch = Scratch(n: n)
        let s = data.stride

        var agrees = true, quantizedAgrees = true
        for query in 0..<queryCount {
            let qp = UnsafePointer(data.queries + query * s)
            // The two paths sum in different orders, so scores agree to rounding, not bit for bit.
            let top = topK(data, query: qp, buffer: scratch.buffer), reference = fullSort(data, query: qp, all: scratch.all)
            if top.map(\.index) != reference.map(\.index)
                || zip(top, reference).contains(where: { abs($0.score - $1.score) > 1e-4 * max(1, abs($1.score)) }) {
                agrees = false
            }
            if quantizedTopK(data, query: qp) != top { quantizedAgrees = false }
        }

        let scoreOnly = Benchmark("figure 3 d=\(d) n=\(n) score only") { reps in
            var acc: Float = 0
            let buffer = scratch.buffer
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (scratch.query & (queryCount - 1)) * s)
                scratch.query &+= 1
                var base = 0
                while base < n {
                    let rows = min(block, n - base)
                    data.scoreBlocked(base: base, rows: rows, query: qp, out: buffer)
                    acc += buffer[rows - 1]
                    base += rows
                }
            }
            consume(acc)
        }
        let top = Benchmark("figure 3 d=\(d) n=\(n) top-10") { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (scratch.query & (queryCount - 1)) * s)
                scratch.query &+= 1
                acc += topK(data, query: qp, buffer: scratch.buffer)[0].score
            }
            consume(acc)
        }
        let full = Benchmark("figure 3 d=\(d) n=\(n) full sort") { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (scratch.query & (queryCount - 1)) * s)
                scratch.query &+= 1
                acc += fullSort(data, query: qp, all: scratch.all)[0].score
            }
            consume(acc)
        }
        let quantized = Benchmark("figure 3 d=\(d) n=\(n) quantized top-10") { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (scratch.query & (queryCount - 1)) * s)
                scratch.query &+= 1
                acc += quantizedTopK(data, query: qp)[0].score
            }
            consume(acc)
        }
        return Case(
            d: d, n: n, scoreOnly: scoreOnly, topK: top, fullSort: full, quantized: quantized,
            agrees: agrees, quantizedAgrees: quantizedAgrees,
            blockedBytesPerItem: Double((data.blocked.count + data.blockedBias.count) * 4) / Double(n),
            quantizedBytesPerItem: Double(data.quantized.byteCount) / Double(n))
    }
}

extension Figure3 {
    /// The quantized top-10 at one width of the integer kernel (`Int8Kernels.Level`).
    struct KernelWidth {
        let d: Int, n: Int
        let level: Int8Kernels.Level
        let benchmark: Benchmark
        /// The answer equals the widest level's for every query (items and score bits).
        let agrees: Bool
    }

    /// The quantized top-10 at every kernel width this machine runs, on the data of `make(d:n:)`.
    static func kernelWidths(d: Int, n: Int) -> [KernelWidth] {
        let data = Data(d: d, n: n, seed: 0xF16_3000 &+ UInt64(d * 1_000_003 + n))
        let s = data.stride
        let references = (0..<queryCount).map { quantizedTopK(data, query: UnsafePointer(data.queries + $0 * s)) }
        var next = 0
        return Int8Kernels.Level.supported.map { level in
            let agrees = (0..<queryCount).allSatisfy {
                quantizedTopK(data, query: UnsafePointer(data.queries + $0 * s), kernel: level) == references[$0]
            }
            let benchmark = Benchmark("figure 3 d=\(d) n=\(n) quantized top-10, \(level)") { reps in
                var acc: Float = 0
                for _ in 0..<reps {
                    let qp = UnsafePointer(data.queries + (next & (queryCount - 1)) * s)
                    next &+= 1
                    acc += quantizedTopK(data, query: qp, kernel: level)[0].score
                }
                consume(acc)
            }
            return KernelWidth(d: d, n: n, level: level, benchmark: benchmark, agrees: agrees)
        }
    }
}

/// A dot product at d = 50 (stride 56): throughput over a pool of vector pairs, ns per call.
enum DotBench {
    final class Vectors {
        let a: UnsafeMutablePointer<Float>
        let b: UnsafeMutablePointer<Float>
        var offset = 0
        init(count: Int, d: Int, stride s: Int) {
            a = .allocate(capacity: count * s)
            b = .allocate(capacity: count * s)
            a.initialize(repeating: 0, count: count * s)
            b.initialize(repeating: 0, count: count * s)
            var rng = SplitMix64(seed: 0xD07)
            for i in 0..<count {
                for c in 0..<d {
                    a[i * s + c] = Float(rng.nextGaussian())
                    b[i * s + c] = Float(rng.nextGaussian())
                }
            }
        }
        deinit {
            a.deallocate()
            b.deallocate()
        }
    }

    static func make(d: Int) -> Benchmark {
        let s = VectorKernels.paddedStride(d)
        let count = 64
        let v = Vectors(count: count, d: d, stride: s)
        return Benchmark("dot d=\(d)") { reps in
            var acc: Float = 0
            let ap = v.a, bp = v.b, offset = v.offset
            for r in 0..<reps {
                let i = (r &+ offset) & (count - 1)
                let j = (r &* 7 &+ offset) & (count - 1)
                acc += VectorKernels.dot(ap + i * s, bp + j * s, count: s)
            }
            v.offset &+= 1
            consume(acc)
        }
    }
}
