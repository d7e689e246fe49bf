import OspreyMath

/// Figure 3 of the Velox paper: latency of a top-k query (k = 10) against the candidate-set
/// size. The item table is row-major, rows padded to the stride; each query scores it in blocks
/// of 256 with `VectorKernels.scoreRows` and offers every block to a `TopKSelector`. The baseline
/// scores everything, then sorts all (score, index) pairs.
enum Figure3 {
    static let k = 10
    static let block = 256
    static let queryCount = 16

    struct Result {
        var d: Int
        var n: Int
        /// Scoring only (blocks of 256 into a buffer), no selection.
        var scoreOnly: Stats
        /// Scoring + TopKSelector + sorted().
        var topK: Stats
        /// Scoring all n + full sort of (score, index) pairs + first k.
        var fullSort: Stats
        /// The top-k answer equals the first k of the full sort (for every query).
        var agrees: Bool
    }

    /// A random item table, item biases (the `offsets`) and a few queries.
    struct Data {
        let d: Int, n: Int, stride: Int
        let table: UnsafeMutablePointer<Float>
        let bias: UnsafeMutablePointer<Float>
        let queries: UnsafeMutablePointer<Float>

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
        }

        func deallocate() {
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
            VectorKernels.scoreRows(
                matrix: data.table + base * data.stride, stride: data.stride, rows: rows,
                query: query, offsets: data.bias + base, out: buffer)
            selector.offer(scores: UnsafeBufferPointer(start: buffer, count: rows), base: base)
            base += rows
        }
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

    static func run(d: Int, n: Int, config: BenchConfig) -> Result {
        let data = Data(d: d, n: n, seed: 0xF16_3000 &+ UInt64(d * 1_000_003 + n))
        defer { data.deallocate() }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: block)
        defer { buffer.deallocate() }
        let all = UnsafeMutablePointer<Float>.allocate(capacity: n)
        defer { all.deallocate() }
        let s = data.stride
        var q = 0

        var agrees = true
        for query in 0..<queryCount {
            let qp = UnsafePointer(data.queries + query * s)
            if topK(data, query: qp, buffer: buffer) != fullSort(data, query: qp, all: all) { agrees = false }
        }

        let scoreOnly = measure(config) { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (q & (queryCount - 1)) * s)
                q &+= 1
                var base = 0
                while base < n {
                    let rows = min(block, n - base)
                    VectorKernels.scoreRows(
                        matrix: data.table + base * s, stride: s, rows: rows,
                        query: qp, offsets: data.bias + base, out: buffer)
                    acc += buffer[rows - 1]
                    base += rows
                }
            }
            consume(acc)
        }
        let top = measure(config) { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (q & (queryCount - 1)) * s)
                q &+= 1
                acc += topK(data, query: qp, buffer: buffer)[0].score
            }
            consume(acc)
        }
        let full = measure(config) { reps in
            var acc: Float = 0
            for _ in 0..<reps {
                let qp = UnsafePointer(data.queries + (q & (queryCount - 1)) * s)
                q &+= 1
                acc += fullSort(data, query: qp, all: all)[0].score
            }
            consume(acc)
        }
        return Result(d: d, n: n, scoreOnly: scoreOnly, topK: top, fullSort: full, agrees: agrees)
    }
}

/// A dot product at d = 50 (stride 56): throughput over a pool of vector pairs, ns per call.
enum DotBench {
    static func run(d: Int, config: BenchConfig) -> Stats {
        let s = VectorKernels.paddedStride(d)
        let count = 64
        var rng = SplitMix64(seed: 0xD07)
        var a = [Float](repeating: 0, count: count * s)
        var b = [Float](repeating: 0, count: count * s)
        for i in 0..<count {
            for c in 0..<d {
                a[i * s + c] = Float(rng.nextGaussian())
                b[i * s + c] = Float(rng.nextGaussian())
            }
        }
        return a.withUnsafeBufferPointer { ab in
            b.withUnsafeBufferPointer { bb in
                let ap = ab.baseAddress!, bp = bb.baseAddress!
                var offset = 0
                return measure(config) { reps in
                    var acc: Float = 0
                    for r in 0..<reps {
                        let i = (r &+ offset) & (count - 1)
                        let j = (r &* 7 &+ offset) & (count - 1)
                        acc += VectorKernels.dot(ap + i * s, bp + j * s, count: s)
                    }
                    offset &+= 1
                    consume(acc)
                }
            }
        }
    }
}
