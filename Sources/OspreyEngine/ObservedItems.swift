/// The catalogue rows each user has rated or observed (initial training data and the log), for
/// top-k's `exclude_observed`.
///
/// Served from the store, one user at a time (``init(load:)``): an index range read of that
/// user's training ratings and log entries per request that asks, so nothing is held for a
/// million users and nothing is rebuilt at startup. Tests without a store keep the sets in
/// memory (``init()``), filled by learning.
public final class ObservedItems: Sendable {
    private let stripes = StripedLocks { [String: Set<Int32>]() }
    private let load: (@Sendable (String) throws -> [Int])?

    /// Sets kept in memory, filled by ``insert(uid:row:)``.
    init() {
        load = nil
    }

    /// Rows read on demand: `load` returns the catalogue rows of one user's ratings (repeats and
    /// any order allowed).
    init(load: @escaping @Sendable (String) throws -> [Int]) {
        self.load = load
    }

    /// Records that `uid` rated catalogue row `row` (kept only in memory mode). O(1).
    func insert(uid: String, row: Int) {
        guard load == nil else { return }
        stripes.withLock(uid) { _ = $0[uid, default: []].insert(Int32(row)) }
    }

    /// The rows `uid` has rated, ascending, each once. O(r log r) for r rows, plus the read.
    /// - Throws: what the store's read throws.
    public func rows(of uid: String) throws -> [Int] {
        if let load { return Set(try load(uid)).sorted() }
        return stripes.withLock(uid) { ($0[uid] ?? []).map(Int.init).sorted() }
    }
}
