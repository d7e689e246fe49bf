import OspreyModel

/// Every user's weights for one model, sharded by uid over striped locks (DESIGN.md §7): an
/// update locks one stripe, so users on other stripes are read and written concurrently.
public final class UserWeightStore: Sendable {
    struct State {
        var users: [String: UserWeights] = [:]
        /// Users changed since the last snapshot.
        var dirty: Set<String> = []
    }

    private let stripes = StripedLocks { State() }

    /// A store holding `users`, all clean (as just loaded from a snapshot).
    public init(users: [String: UserWeights] = [:]) {
        for (uid, w) in users {
            stripes.withLock(uid) { $0.users[uid] = w }
        }
    }

    /// Calls `body` with the user's weights (nil for a user never seen) under the stripe lock.
    /// O(1) plus `body`.
    public func read<R>(_ uid: String, _ body: (borrowing UserWeights?) throws -> R) rethrows -> R {
        try stripes.withLock(uid) { try body($0.users[uid]) }
    }

    /// Changes one user's weights under the stripe lock and marks the user for the next snapshot.
    /// `create` supplies the starting weights of a user never seen. O(1) plus `body`.
    public func update<R>(_ uid: String, create: () -> UserWeights, _ body: (inout UserWeights) throws -> R) rethrows -> R {
        try stripes.withLock(uid) { s in
            s.dirty.insert(uid)
            if s.users[uid] == nil { s.users[uid] = create() }
            return try body(&s.users[uid]!)
        }
    }

    /// The number of users. O(stripes).
    public var count: Int {
        var n = 0
        stripes.forEach { n += $0.users.count }
        return n
    }

    /// Takes the ids of the users changed since the last call and marks them clean. O(changed).
    public func takeChanged() -> [String] {
        var out: [String] = []
        stripes.forEach { st in
            out.append(contentsOf: st.dirty)
            st.dirty.removeAll(keepingCapacity: true)
        }
        return out
    }

    /// Marks users changed again (after a snapshot of them failed to save).
    public func markChanged(_ uids: some Sequence<String>) {
        for uid in uids { stripes.withLock(uid) { _ = $0.dirty.insert(uid) } }
    }
}
