import OspreyModel

/// Users a cluster node gains (docs/operations.md, "Partitioned serving"): the node holds no
/// state of a user until it first serves it, then adopts it from the stores.
extension UserWeightStore {
    /// A user's state as the stores hold it: its snapshot row (or the prior, for a user with none)
    /// and its logged observations after the row, learned through `through`.
    public struct Adopted: Sendable {
        public var weights: UserWeights
        /// The last log sequence the state reflects (the log's last when it was read).
        public var through: Int64
        /// Whether any logged observation was learned on top of the row (the state then differs
        /// from the row, and the next snapshot saves it).
        public var replayed: Bool

        public init(weights: UserWeights, through: Int64, replayed: Bool) {
            self.weights = weights
            self.through = through
            self.replayed = replayed
        }
    }

    /// Reads a user's state from the stores: nil for a user with neither a row nor an observation.
    public typealias Adopt = @Sendable (_ uid: String) throws -> Adopted?

    /// Makes `uid` held here, if it is not, with the state `load` reads (outside the stripe lock;
    /// when two adoptions race, the first to finish is kept). The user is hot, and dirty when its
    /// log added to its row; its adopted sequence (``adoptedThrough(_:)``) keeps it from
    /// learning again what the adoption read, and is the least its next snapshot row records.
    /// O(1) when held, else the read.
    /// - Throws: what `load` throws; nothing changed then.
    public func adopt(_ uid: String, _ load: Adopt) throws {
        if stripes.withLock(uid, { $0.slots[uid] != nil }) { return }
        guard let adopted = try load(uid) else { return }
        let (inserted, evicted) = stripes.withLock(uid) { st -> (Bool, Int) in
            guard st.slots[uid] == nil else { return (false, 0) }
            let (slot, _) = st.slot(for: uid, stride: stride)
            st.writeThrough(adopted.weights, slot: slot, stride: stride)
            if adopted.replayed { st.dirty.insert(slot) }
            st.promote(slot, makeHot(adopted.weights.ridge, referenced: true), clean: !adopted.replayed)
            st.adoptedThrough[slot] = adopted.through
            return (true, st.evict(limit: perStripe))
        }
        if evicted > 0 { metrics.evictions.increment(by: evicted) }
        if inserted { tally(users: 1, hot: 1 - evicted) }
    }

    /// The log sequence an adopted user's state reflected when it was adopted (nil for a user not
    /// adopted): an observation at or below it is learned already. O(1).
    public func adoptedThrough(_ uid: String) -> Int64? {
        stripes.withLock(uid) { st in st.slots[uid].flatMap { st.adoptedThrough[$0] } }
    }

    /// Forgets every user `drop` selects (``remove(_:)`` each): a cluster node's users of the
    /// buckets it lost. Returns how many. O(users).
    @discardableResult
    public func removeAll(where drop: (String) -> Bool) -> Int {
        var uids: [String] = []
        stripes.forEach { st in uids.append(contentsOf: st.slots.keys.filter(drop)) }
        return uids.reduce(0) { $0 + (remove($1) ? 1 : 0) }
    }
}
