/// The catalogue rows each user has rated or observed (initial training data and the log), for
/// top-k's `exclude_observed`. Rebuilt from the store at startup and kept current by learning.
public final class ObservedItems: Sendable {
    private let stripes = StripedLocks { [String: Set<Int32>]() }

    init() {}

    /// Records that `uid` rated catalogue row `row`. O(1).
    func insert(uid: String, row: Int) {
        stripes.withLock(uid) { _ = $0[uid, default: []].insert(Int32(row)) }
    }

    /// The rows `uid` has rated, ascending. O(r log r) for r rows.
    public func rows(of uid: String) -> [Int] {
        stripes.withLock(uid) { ($0[uid] ?? []).map(Int.init).sorted() }
    }
}
