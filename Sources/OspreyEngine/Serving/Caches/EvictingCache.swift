/// A bounded key–value cache that chooses what to evict (Velox §5 caches). Implementations are
/// classes that are not thread-safe: their owner calls them under a lock.
public protocol EvictingCache<Key, Value>: AnyObject, Sendable {
    associatedtype Key: Hashable & Sendable
    associatedtype Value: Sendable

    /// The most entries held.
    var capacity: Int { get }
    /// The entries held now.
    var count: Int { get }
    /// The value cached for `key`, recording the access (a hit). O(1).
    func value(for key: Key) -> Value?
    /// Caches `value` for `key`, replacing a value already there; evicts as needed, passing each
    /// evicted entry to `evicted`. Returns the number of entries evicted. O(1) amortized.
    @discardableResult
    func insert(_ value: Value, for key: Key, evicted: (Key, Value) -> Void) -> Int
    /// Up to `limit` keys, the ones the policy values most first (the most recently used, or the
    /// most frequently used). O(count).
    func hottest(_ limit: Int) -> [Key]
    /// Drops every entry. O(capacity).
    func removeAll()
}

extension EvictingCache {
    /// Caches `value` for `key`, replacing a value already there; evicts as needed. Returns the
    /// number of entries evicted. O(1) amortized.
    @discardableResult
    public func insert(_ value: Value, for key: Key) -> Int { insert(value, for: key) { _, _ in } }
}

/// The eviction policies a cache can use.
public enum EvictionPolicy: String, Sendable, CaseIterable {
    /// Least recently used.
    case lru
    /// S3-FIFO (Yang et al., SOSP 2023): a small FIFO that filters one-hit wonders, a main FIFO
    /// with reinsertion of entries used again, and a ghost queue of recently evicted keys.
    /// Scan-resistant: a burst of keys used once evicts little of the main queue.
    case s3fifo

    /// An empty cache of this policy holding up to `capacity` entries.
    public func makeCache<Key: Hashable & Sendable, Value: Sendable>(capacity: Int) -> any EvictingCache<Key, Value> {
        switch self {
        case .lru: LRUCache<Key, Value>(capacity: capacity)
        case .s3fifo: S3FIFOCache<Key, Value>(capacity: capacity)
        }
    }
}

/// A cache of the chosen policy as a concrete type, so its code is specialized for the key and
/// value (a call through ``EvictingCache`` runs unspecialized generic dictionary code, measured
/// 2–5× slower). Not thread-safe, like the caches it holds.
enum PolicyCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    case lru(LRUCache<Key, Value>)
    case s3fifo(S3FIFOCache<Key, Value>)

    init(_ policy: EvictionPolicy, capacity: Int) {
        switch policy {
        case .lru: self = .lru(LRUCache(capacity: capacity))
        case .s3fifo: self = .s3fifo(S3FIFOCache(capacity: capacity))
        }
    }

    /// The cache behind the protocol, for the calls off the hot path.
    var cache: any EvictingCache<Key, Value> {
        switch self {
        case .lru(let c): c
        case .s3fifo(let c): c
        }
    }

    func value(for key: Key) -> Value? {
        switch self {
        case .lru(let c): c.value(for: key)
        case .s3fifo(let c): c.value(for: key)
        }
    }

    func insert(_ value: Value, for key: Key, evicted: (Key, Value) -> Void = { _, _ in }) -> Int {
        switch self {
        case .lru(let c): c.insert(value, for: key, evicted: evicted)
        case .s3fifo(let c): c.insert(value, for: key, evicted: evicted)
        }
    }
}

/// A first-in first-out queue in a ring buffer. O(1) push and pop (amortized while it grows).
struct FIFOQueue<Element: Sendable>: Sendable {
    private var buffer: [Element?]
    private var head = 0
    private(set) var count = 0
    /// The most elements it is expected to hold: its buffer doubles up to this size, then grows
    /// only as needed.
    let capacity: Int

    /// An empty queue whose buffer starts at `initial` elements (at most `capacity`), so a
    /// cache that is not yet full holds no more than it needs: a new version's answer cache
    /// beside the serving one's while it catches up (docs/architecture.md, "Install").
    init(capacity: Int, initial: Int = 16) {
        self.capacity = max(1, capacity)
        buffer = Array(repeating: nil, count: min(self.capacity, max(1, initial)))
    }

    /// Appends at the tail, growing the buffer when full.
    mutating func push(_ element: Element) {
        if count == buffer.count {
            let old = (0..<count).map { buffer[(head + $0) % buffer.count] }
            let size = count < capacity ? min(2 * count, capacity) : 2 * count
            buffer = old + Array(repeating: nil, count: size - count)
            head = 0
        }
        buffer[(head + count) % buffer.count] = element
        count += 1
    }

    /// Removes the oldest element.
    mutating func pop() -> Element? {
        guard count > 0 else { return nil }
        let e = buffer[head]
        buffer[head] = nil
        head = (head + 1) % buffer.count
        count -= 1
        return e
    }

    /// The elements its buffer has room for now. O(1).
    var allocated: Int { buffer.count }

    /// The elements, newest first.
    var newestFirst: [Element] { (0..<count).reversed().map { buffer[(head + $0) % buffer.count]! } }

    mutating func removeAll() {
        buffer = Array(repeating: nil, count: buffer.count)
        head = 0
        count = 0
    }
}
