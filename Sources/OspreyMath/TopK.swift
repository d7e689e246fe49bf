/// One scored entry of a top-k answer.
public struct ScoredIndex: Sendable, Equatable {
    public var index: Int
    public var score: Float
    public init(index: Int, score: Float) {
        self.index = index
        self.score = score
    }
}

/// Selects the `k` highest scores with a bounded min-heap: O(n log k) over n candidates and O(k)
/// memory, instead of sorting all n. Ties are broken by the lower index, so the answer equals the
/// first `k` of a full sort by (score descending, index ascending). NaN scores are never selected.
public struct TopKSelector: Sendable {
    /// How many entries are kept.
    public let k: Int
    @usableFromInline var heap: [ScoredIndex]

    /// A selector keeping the best `k` (`k` ≥ 1) entries.
    public init(k: Int) {
        precondition(k >= 1, "k must be at least 1")
        self.k = k
        heap = []
        heap.reserveCapacity(k)
    }

    /// The worst kept score once `k` entries are kept, else −∞: a score below it cannot enter. O(1).
    @inlinable
    public var threshold: Float { heap.count == k ? heap[0].score : -.infinity }

    /// True when `a` ranks below `b` (lower score, or equal score and higher index).
    @inlinable @inline(__always)
    static func worse(_ a: ScoredIndex, _ b: ScoredIndex) -> Bool {
        a.score < b.score || (a.score == b.score && a.index > b.index)
    }

    /// Offers one candidate. O(log k) when it enters, O(1) when it does not.
    @inlinable
    public mutating func offer(index: Int, score: Float) {
        guard !score.isNaN else { return }
        let entry = ScoredIndex(index: index, score: score)
        if heap.count < k {
            heap.append(entry)
            siftUp(heap.count - 1)
        } else if Self.worse(heap[0], entry) {
            heap[0] = entry
            siftDown(0)
        }
    }

    /// Offers `scores[i]` for every i as index `base + i`. O(n log k) at worst; once the heap
    /// is full, a candidate below the worst kept score costs one comparison.
    @inlinable
    public mutating func offer(scores: UnsafeBufferPointer<Float>, base: Int) {
        var threshold = heap.count == k ? heap[0].score : -Float.infinity
        for i in 0..<scores.count {
            let s = scores[i]
            // `>=`: an equal score may still win on a lower index. NaN compares false.
            guard s >= threshold else { continue }
            offer(index: base + i, score: s)
            if heap.count == k { threshold = heap[0].score }
        }
    }

    @inlinable
    mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            if Self.worse(heap[child], heap[parent]) {
                heap.swapAt(child, parent)
                child = parent
            } else { return }
        }
    }

    @inlinable
    mutating func siftDown(_ start: Int) {
        var parent = start
        let n = heap.count
        while true {
            let l = 2 * parent + 1, r = l + 1
            var worst = parent
            if l < n && Self.worse(heap[l], heap[worst]) { worst = l }
            if r < n && Self.worse(heap[r], heap[worst]) { worst = r }
            if worst == parent { return }
            heap.swapAt(parent, worst)
            parent = worst
        }
    }

    /// The kept entries, best first. O(k log k).
    public func sorted() -> [ScoredIndex] {
        heap.sorted { Self.worse($1, $0) }
    }
}

extension Array where Element == Int {
    /// The index of `value` in this ascending array, by binary search, or nil. O(log n).
    public func sortedIndex(of value: Int) -> Int? {
        var lo = 0, hi = count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self[mid] < value { lo = mid + 1 } else { hi = mid }
        }
        return lo < count && self[lo] == value ? lo : nil
    }
}
