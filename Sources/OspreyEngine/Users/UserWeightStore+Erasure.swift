/// The erasure of one user from the tiers (docs/operations.md, "Erasing a user").
extension UserWeightStore {
    /// Forgets user `uid` (a user's erasure, docs/operations.md "Erasing a user"): from here it
    /// is a user never seen, which its next observation bootstraps from the prior. Its hot state,
    /// its marks for the next snapshot, a read ahead, a failed rebuild's replay and what a catch-up
    /// recorded of it go with it; its
    /// cold-tier slot is zeroed and left unused (a new observation takes a new one). Returns
    /// whether the user was known. O(the stripe's hot users).
    @discardableResult
    public func remove(_ uid: String) -> Bool {
        let (known, wasHot) = stripes.withLock(uid) { st -> (Bool, Bool) in
            guard let slot = st.slots.removeValue(forKey: uid) else { return (false, false) }
            let wasHot = st.hot.removeValue(forKey: slot) != nil
            if wasHot {
                if st.isClean(slot) { st.cleanHot -= 1 }
                if let at = st.ring.firstIndex(of: slot) {
                    st.ring[at] = st.ring[st.ring.count - 1]
                    st.ring.removeLast()
                }
            }
            st.dirty.remove(slot)
            st.saving.remove(slot)
            st.unlearned[slot] = nil
            st.adoptedThrough[slot] = nil
            st.prefetched[slot] = nil
            st.prefetching[slot] = nil
            let i = Int(slot)
            st.uids[i] = ""
            st.weights.withUnsafeMutableBufferPointer { ($0.baseAddress! + i * stride).update(repeating: 0, count: stride) }
            st.observations[i] = 0
            st.runningLoss[i] = .nan
            st.bootstrapped[i] = true
            return (true, wasHot)
        }
        if known { tally(users: -1, hot: wasHot ? -1 : 0) }
        recent.forget(uid)
        return known
    }
}
