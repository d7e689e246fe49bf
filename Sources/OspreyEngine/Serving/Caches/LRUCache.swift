/// A least-recently-used cache: a hash map into a doubly linked list kept in arrays (no
/// allocation per entry once full). O(1) lookup, insert and eviction. Not thread-safe.
public final class LRUCache<Key: Hashable & Sendable, Value: Sendable>: EvictingCache, @unchecked Sendable {
    public let capacity: Int
    private var slots: [Key: Int32] = [:]
    private var keys: [Key?]
    private var values: [Value?]
    private var prev: [Int32]
    private var next: [Int32]
    /// Most and least recently used slots (-1 when empty).
    private var head: Int32 = -1
    private var tail: Int32 = -1
    private var used = 0

    /// - Precondition: `capacity >= 1`.
    public init(capacity: Int) {
        precondition(capacity >= 1, "a cache holds at least one entry")
        self.capacity = capacity
        keys = Array(repeating: nil, count: capacity)
        values = Array(repeating: nil, count: capacity)
        prev = Array(repeating: -1, count: capacity)
        next = Array(repeating: -1, count: capacity)
        slots.reserveCapacity(capacity)
    }

    public var count: Int { slots.count }

    public func value(for key: Key) -> Value? {
        guard let s = slots[key] else { return nil }
        moveToFront(s)
        return values[Int(s)]
    }

    @discardableResult
    public func insert(_ value: Value, for key: Key, evicted: (Key, Value) -> Void) -> Int {
        if let s = slots[key] {
            values[Int(s)] = value
            moveToFront(s)
            return 0
        }
        var count = 0
        let s: Int32
        if used < capacity {
            s = Int32(used)
            used += 1
        } else {
            s = tail
            unlink(s)
            let old = keys[Int(s)]!
            slots[old] = nil
            evicted(old, values[Int(s)]!)
            count = 1
        }
        keys[Int(s)] = key
        values[Int(s)] = value
        slots[key] = s
        pushFront(s)
        return count
    }

    public func hottest(_ limit: Int) -> [Key] {
        var out: [Key] = []
        var s = head
        while s >= 0 && out.count < limit {
            out.append(keys[Int(s)]!)
            s = next[Int(s)]
        }
        return out
    }

    public func removeAll() {
        slots.removeAll(keepingCapacity: true)
        for i in 0..<used { keys[i] = nil; values[i] = nil }
        head = -1; tail = -1; used = 0
    }

    private func unlink(_ s: Int32) {
        let p = prev[Int(s)], n = next[Int(s)]
        if p >= 0 { next[Int(p)] = n } else { head = n }
        if n >= 0 { prev[Int(n)] = p } else { tail = p }
    }

    private func pushFront(_ s: Int32) {
        prev[Int(s)] = -1
        next[Int(s)] = head
        if head >= 0 { prev[Int(head)] = s }
        head = s
        if tail < 0 { tail = s }
    }

    private func moveToFront(_ s: Int32) {
        guard s != head else { return }
        unlink(s)
        pushFront(s)
    }
}
