import OspreyModel
import Synchronization

/// A state that catches up with the log before it serves (a retrain's or a rollback's version)
/// learns what arrived since its rows while the state it replaces still serves, so every user
/// active meanwhile would hold a full state in both (docs/architecture.md, "Versions"). Tiered
/// and with item updates off, it keeps only a bounded share of them hot: the others are demoted
/// — their `w_u` and small fields stay current in the cold tier, so reads are exact, and they
/// *lag*: their next rebuild is their row plus their observations since the catch-up began,
/// kept in ``recent`` (the same path a failed rebuild's replay takes, ``earliestUnlearned``
/// included). Once the state serves, and the state it replaced is freed, the lagging users are
/// made hot again (``catchUpLagging(_:through:)``) and ``recent`` is closed.
extension UserWeightStore {
    /// Starts recording what the state learns from sequence `from` on (the first its rows do not
    /// reflect), and marks the users it holds now as the ones with rows. O(stripes).
    func beginCatchUp(from: Int64) {
        stripes.forEach { st in st.storedSlots = Int32(st.uids.count) }
        recent.open(from: from)
    }

    /// Lets hot users go until at most `bound` are hot (each stripe its share, at least one):
    /// clean ones are evicted, changed ones with a row demoted to lagging. Users made by the
    /// catch-up (no row yet) stay. Only while catching up (``beginCatchUp(from:)``) and never
    /// for a state that serves: it takes changed users out of the next snapshot. Returns the
    /// users let go. O(users let go).
    @discardableResult
    func demote(toAtMost bound: Int) -> Int {
        guard let from = recent.from else { preconditionFailure("demote only while catching up") }
        let n = StripedLocks<Stripe>.stripeCount
        let limit = max(1, (bound + n - 1) / n)
        var demoted = 0
        stripes.forEach { st in
            var steps = st.ring.count
            while st.hot.count > limit, steps > 0, !st.ring.isEmpty {
                steps -= 1
                if st.hand >= st.ring.count { st.hand = 0 }
                let slot = st.ring[st.hand]
                let clean = st.isClean(slot)
                guard clean || (slot < st.storedSlots && !st.saving.contains(slot)) else {
                    st.hand += 1
                    continue
                }
                st.hot[slot] = nil
                st.ring[st.hand] = st.ring[st.ring.count - 1]
                st.ring.removeLast()
                if clean {
                    st.cleanHot -= 1
                } else {
                    st.dirty.remove(slot)
                    st.unlearned[slot] = min(st.unlearned[slot] ?? from, from)
                }
                demoted += 1
            }
        }
        if demoted > 0 { tally(users: 0, hot: -demoted) }
        return demoted
    }

    /// Makes lagging user `uid` hot and changed: its rebuild learns its logged observations up to
    /// `through` again (every observation up to it has been learned; later ones of the user are
    /// still to be, and will find it hot). False when the user is hot, unknown or not lagging.
    /// Never evicts. O(d²) and a point read, plus the user's observations since its row.
    /// - Throws: what ``Rebuild`` throws; the user then stays lagging.
    func catchUpLagging(_ uid: String, through: Int64) throws -> Bool {
        guard let rebuild else { return false }
        let made = try stripes.withLock(uid) { st -> Bool in
            guard let slot = st.slots[uid], st.hot[slot] == nil, let from = st.unlearned[slot] else { return false }
            let w = try rebuild(uid, from..<(through + 1))
            st.unlearned[slot] = nil
            st.promote(slot, makeHot(w.ridge, referenced: false), clean: false)
            st.dirty.insert(slot)
            st.writeThrough(w, slot: slot, stride: stride)
            return true
        }
        if made {
            metrics.rebuilds.increment()
            tally(users: 0, hot: 1)
        }
        return made
    }

    /// The users that lag (demoted by a catch-up, or left so by a failed rebuild). O(users).
    func laggingUids() -> [String] {
        var out: [String] = []
        stripes.forEach { st in
            for slot in st.unlearned.keys { out.append(st.uids[Int(slot)]) }
        }
        return out
    }
}
