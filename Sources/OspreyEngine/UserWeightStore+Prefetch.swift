/// Reading cold users' full states ahead of learning them.
extension UserWeightStore {
    /// Reads held ahead at most, per stripe (a full state is ~20 KB at d = 50: ~20 MB at most).
    static let prefetchLimit = 16

    /// The read of a cold user's full state ahead of learning its observation, to run off the
    /// caller's thread (for example while the observation's commit syncs): the learning step then
    /// promotes the user without reading the store under its stripe lock, where every learn
    /// behind it waits. Nil when there is nothing to read: a user unknown or hot, a read already
    /// held or under way, a failed rebuild to replay (the learning step does that), or
    /// ``prefetchLimit`` reads held. The state read is kept only if the user is still cold and has
    /// not been promoted since this call; a cold user's snapshot row is its state until then. A
    /// read that fails keeps nothing (the learning step reads again). O(1); the read is a rebuild.
    public func prefetch(_ uid: String) -> (@Sendable () -> Void)? {
        guard let rebuild else { return nil }
        let ticket = stripes.withLock(uid) { st -> UInt64? in
            guard let slot = st.slots[uid], st.hot[slot] == nil, st.unlearned[slot] == nil,
                  st.prefetched[slot] == nil, st.prefetching[slot] == nil,
                  st.prefetched.count + st.prefetching.count < Self.prefetchLimit
            else { return nil }
            st.nextTicket += 1
            st.prefetching[slot] = st.nextTicket
            return st.nextTicket
        }
        guard let ticket else { return nil }
        return { [self] in
            // The learning step may have promoted the user while this read waited for a thread.
            let due = stripes.withLock(uid) { st in st.slots[uid].map { st.prefetching[$0] == ticket } ?? false }
            guard due else { return }
            let w = try? rebuild(uid, nil)
            stripes.withLock(uid) { st in
                guard let slot = st.slots[uid], st.prefetching[slot] == ticket else { return }
                st.prefetching[slot] = nil
                if let w, st.hot[slot] == nil, st.unlearned[slot] == nil { st.prefetched[slot] = w }
            }
        }
    }
}
