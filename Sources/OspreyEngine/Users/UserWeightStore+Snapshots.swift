/// The snapshot's side of the tiers: which users changed since the last snapshot, which it has
/// saved (and so may leave the hot tier), and how far the log is learned for every user.
extension UserWeightStore {
    /// Takes the ids of the users changed since the last call; they stay hot until
    /// ``finishSnapshot(_:)`` (or ``markChanged(_:)`` when saving them failed). O(changed).
    public func takeChanged() -> [String] {
        var out: [String] = []
        stripes.forEach { st in
            for slot in st.dirty { out.append(st.uids[Int(slot)]) }
            st.saving.formUnion(st.dirty)
            st.dirty.removeAll(keepingCapacity: true)
        }
        return out
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
