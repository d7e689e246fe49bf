/// The snapshot's side of the tiers: which users changed since the last snapshot, which it has
/// saved (and so may leave the hot tier), and how far the log is learned for every user.
extension UserWeightStore {
    /// Takes the ids of the users changed since the last call; they stay hot until
    /// ``finishSnapshot(_:)`` (or ``markChanged(_:)`` when saving them failed). O(changed).
    public func takeChanged() -> [String] { takeChangedAtCut(states: false).uids }

    /// The users changed since the last take, as of one moment (a snapshot's cut): each
    /// stripe's changed slots and ids and, when asked for, the columns their states are read
    /// from, shared with the live stripe rather than read (copy-on-write: the first change to a
    /// stripe after the cut copies what it changes, so only a cut that needs the states shares
    /// them). Taking it is O(stripes), so a cut under the learning lock stays short whatever
    /// the number of changed users; reading it is O(changed), outside the lock.
    struct ChangedAtCut: Sendable {
        fileprivate struct Part: Sendable {
            var dirty: Set<Int32>
            var uids: [String]
            var states: Columns?
        }
        fileprivate struct Columns: Sendable {
            var hot: [Int32: Hot]
            var observations: [Int]
            var runningLoss: [Double]
            var bootstrapped: [Bool]
        }
        fileprivate var parts: [Part] = []

        /// The changed users' ids. O(changed).
        var uids: [String] { parts.flatMap { p in p.dirty.map { p.uids[Int($0)] } } }

        /// The changed users with their states as they were at the cut (``Captured``: the ridge
        /// statistics shared, not copied); none when the cut was taken without states. A
        /// changed user is always hot. O(changed).
        func captured() -> [(uid: String, state: Captured)] {
            var out: [(uid: String, state: Captured)] = []
            for p in parts {
                guard let c = p.states else { continue }
                for slot in p.dirty {
                    guard let state = Captured(slot, hot: c.hot, observations: c.observations, runningLoss: c.runningLoss,
                                               bootstrapped: c.bootstrapped) else { continue }
                    out.append((p.uids[Int(slot)], state))
                }
            }
            return out
        }
    }

    /// Takes the users changed since the last take as of now (see ``ChangedAtCut``), with the
    /// columns of their states when `states`; they stay hot until ``finishSnapshot(_:)`` (or
    /// ``markChanged(_:)``). O(stripes), or O(changed) for a stripe whose last snapshot has not
    /// finished.
    func takeChangedAtCut(states: Bool) -> ChangedAtCut {
        var cut = ChangedAtCut()
        stripes.forEach { st in
            if states { st.learnedSinceCut = [] }
            guard !st.dirty.isEmpty else { return }
            let columns = states ? ChangedAtCut.Columns(hot: st.hot, observations: st.observations, runningLoss: st.runningLoss,
                                                        bootstrapped: st.bootstrapped) : nil
            cut.parts.append(.init(dirty: st.dirty, uids: st.uids, states: columns))
            if st.saving.isEmpty { st.saving = st.dirty } else { st.saving.formUnion(st.dirty) }
            st.dirty = []
        }
        return cut
    }

    /// The users a cut with states took (``takeChangedAtCut(states:)``) that learned since the
    /// last call, some maybe named twice or already saved: each holds a second copy of its state
    /// until its captured one is written, so a snapshot writes them first. O(stripes + users).
    func takeLearnedSinceCut() -> [String] {
        var out: [String] = []
        stripes.forEach { st in
            guard let slots = st.learnedSinceCut, !slots.isEmpty else { return }
            out.append(contentsOf: slots.map { st.uids[Int($0)] })
            st.learnedSinceCut = []
        }
        return out
    }

    /// Stops recording the users that learn since a cut (``takeLearnedSinceCut()``). O(stripes).
    func endCut() {
        stripes.forEach { st in st.learnedSinceCut = nil }
    }

    /// Records that the snapshot store now holds these users' states: unless changed again
    /// since, they are clean and may be evicted (which happens here for stripes over capacity).
    public func finishSnapshot(_ uids: some Sequence<String>) {
        var evicted = 0
        for uid in uids {
            evicted += stripes.withLock(uid) { st -> Int in
                guard let slot = st.slots[uid], st.saving.remove(slot) != nil else { return 0 }
                if !st.dirty.contains(slot), st.hot[slot] != nil { st.cleanHot += 1 }
                return st.evict(limit: perStripe)
            }
        }
        if evicted > 0 {
            metrics.evictions.increment(by: evicted)
            tally(users: 0, hot: -evicted)
        }
    }

    /// Whether users leave the hot tier (a capacity below every user, and a way to rebuild them).
    public var isTiered: Bool { hotUsers != .max }

    /// The ids of the users whose full state is in memory, and of those a warm start has yet to
    /// make hot (``warmStartList``: so a snapshot during a warm start, or after one stopped
    /// early, records the hot tier it is restoring); some may be named twice. O(hot users).
    public func hotUids() -> [String] {
        var out = warmStartUsers.withLock { $0 }
        stripes.forEach { st in
            for slot in st.hot.keys { out.append(st.uids[Int(slot)]) }
        }
        return out
    }

    /// Marks users changed again (after a snapshot of them failed to save).
    public func markChanged(_ uids: some Sequence<String>) {
        for uid in uids {
            stripes.withLock(uid) { st in
                guard let slot = st.slots[uid] else { return }
                let wasClean = st.hot[slot] != nil && st.isClean(slot)
                st.saving.remove(slot)
                st.dirty.insert(slot)
                if wasClean { st.cleanHot -= 1 }
            }
        }
    }

    /// The sequence of the earliest observation a failed rebuild left unlearned (nil: none). A
    /// snapshot must not record its sequence as reached. O(stripes + such users).
    public var earliestUnlearned: Int64? {
        var earliest: Int64?
        stripes.forEach { st in
            if let m = st.unlearned.values.min() { earliest = min(earliest ?? m, m) }
        }
        return earliest
    }
}
