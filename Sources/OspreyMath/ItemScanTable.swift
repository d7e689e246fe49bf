/// An item table prepared for whole-catalogue top-k: the fastest exact scan for its size.
///
/// - Below ``quantizationThreshold`` items: the Float32 table in blocks of 8 items
///   (``VectorKernels/blockRows(_:rows:stride:dimension:)``), scored 256 at a time with
///   ``VectorKernels/scoreBlocks(blocked:dimension:blocks:broadcast:offsets:out:)`` into a
///   bounded heap. The table is in cache and the per-query overhead is smallest.
/// - From ``quantizationThreshold`` items: the 8-bit ``QuantizedItemTable`` with per-item
///   error bounds and exact rescoring of the few candidates; it reads about a quarter of the
///   bytes, which is what counts once the table no longer fits in cache.
///
/// Both give the same answer, bit for bit: the exact top k of the Float32 scores `ŝ` of the
/// blocked scan, ties broken by the lower row. Row-major table and offsets are shared with the
/// owner (no copy); the extra memory is ``byteCount``.
public struct ItemScanTable: Sendable {
    /// Catalogue size from which the quantized scan is used. Measured with osprey-bench figure 3
    /// on a busy machine: the crossover lies between ~1,000 and ~3,000 items (both scans take a
    /// few µs there); at 100 items the quantized scan's per-query overhead (quantizing the
    /// query, a second heap, the candidate list) makes it 0.5–0.8× as fast.
    public static let quantizationThreshold = 2_048
    /// Items per chunk of the Float32 scan (scored into a stack buffer, then offered to the heap).
    static let chunk = 256

    public let rows: Int
    public let dimension: Int
    /// The Float32 blocked table and its NaN-free zero-padded offsets; empty when quantized.
    public let blocked: [Float]
    public let blockedOffsets: [Float]
    /// The 8-bit table, when `rows ≥ quantizationThreshold`.
    public let quantized: QuantizedItemTable?

    /// Prepares `rows` rows of `stride` floats (first `dimension` used) and their offsets for
    /// scans, quantized from `quantizeFrom` rows. O(rows · dimension).
    /// - Precondition: `table.count == rows · stride`, `offsets.count == rows`.
    public init(table: [Float], offsets: [Float], rows: Int, stride: Int, dimension: Int,
                quantizeFrom: Int = quantizationThreshold) {
        precondition(table.count == rows * stride && offsets.count == rows, "table shape mismatch")
        self.rows = rows
        self.dimension = dimension
        if rows >= quantizeFrom {
            quantized = QuantizedItemTable(table: table, offsets: offsets, rows: rows, stride: stride, dimension: dimension)
            blocked = []
            blockedOffsets = []
        } else {
            quantized = nil
            blocked = VectorKernels.blockRows(table, rows: rows, stride: stride, dimension: dimension)
            blockedOffsets = offsets + [Float](repeating: 0, count: (rows + 7) / 8 * 8 - rows)
        }
    }

    /// Bytes held for scanning beyond the shared row-major table and offsets.
    public var byteCount: Int {
        quantized?.byteCount ?? (blocked.count + blockedOffsets.count) * MemoryLayout<Float>.stride
    }

    /// Offers the exact top `selector.k` rows for `query` (at least `dimension` floats) to
    /// `selector`, leaving out rows in `excluded` (ascending; duplicates allowed). NaN scores
    /// are never selected. O(rows · d + c · log k) for c offered candidates (see
    /// ``QuantizedItemTable/selectTopK(query:excluding:into:)`` for the quantized case).
    public func selectTopK(query: UnsafePointer<Float>, excluding excluded: [Int], into selector: inout TopKSelector) {
        if let quantized {
            quantized.selectTopK(query: query, excluding: excluded, into: &selector)
        } else {
            scanBlocked(query: query, excluding: excluded, into: &selector)
        }
    }

    /// The Float32 scan: chunks of ``chunk`` rows scored into a stack buffer; excluded rows are
    /// set to NaN, which the heap never selects. O(rows · d + rows · log k).
    func scanBlocked(query: UnsafePointer<Float>, excluding excluded: [Int], into selector: inout TopKSelector) {
        let n = rows, d = dimension
        let lanes = VectorKernels.lanes
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: max(1, d)) { broadcast in
            VectorKernels.broadcastQuery(query, dimension: d, into: broadcast.baseAddress!)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: Self.chunk) { scores in
                blocked.withUnsafeBufferPointer { table in
                    blockedOffsets.withUnsafeBufferPointer { offsets in
                        var start = 0, next = 0
                        while start < n {
                            let count = min(Self.chunk, n - start)
                            VectorKernels.scoreBlocks(
                                blocked: table.baseAddress! + start * d, dimension: d,
                                blocks: (count + lanes - 1) / lanes, broadcast: broadcast.baseAddress!,
                                offsets: offsets.baseAddress! + start, out: scores.baseAddress!)
                            while next < excluded.count && excluded[next] < start + count {
                                if excluded[next] >= start { scores[excluded[next] - start] = .nan }
                                next += 1
                            }
                            selector.offer(scores: UnsafeBufferPointer(rebasing: scores[0..<count]), base: start)
                            start += count
                        }
                    }
                }
            }
        }
    }
}
