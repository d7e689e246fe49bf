import OspreyModel
import Synchronization

/// Reading cold users' full states off the stripe lock: ahead of learning them, and to warm the
/// hot tier after a start.
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
        guard let read = readAhead(uid, limited: true, keep: { st, slot, w in
            st.prefetched[slot] = w
            return true
        }) else { return nil }
        return { _ = read() }
    }

    /// Makes a cold user hot from its snapshot row without learning anything: a warm start, so
    /// that the users who were active before a restart do not each pay a rebuild, inside the
    /// learning step, on their first observation after it. The read runs on the caller's thread,
    /// off the stripe lock. The user is promoted — clean, so evictable, and without the second
    /// chance a learn gives — only if it is still cold, has not been promoted since the read
    /// began, and its stripe has room: warming never evicts anyone. Returns whether it was.
    /// O(1) for a user it skips; otherwise a rebuild.
    @discardableResult
    public func warm(_ uid: String) -> Bool {
        let read = readAhead(uid, limited: false) { [perStripe, self] st, slot, w in
            guard st.hot.count < perStripe else { return false }
            st.promote(slot, self.makeHot(w.ridge, referenced: false), clean: st.isClean(slot))
            return true
        }
        guard let read, read() else { return false }
        metrics.warmed.increment()
        tally(users: 0, hot: 1)
        return true
    }

    /// Makes hot those of `uids` that are cold here (``warm(_:)``: never evicting anyone), on
    /// `threads` threads of their own below the request threads (``BackgroundThread``), while
    /// `proceed` holds; `cursor` hands out the list, so a caller that stops early can tell how far
    /// it got. Blocks until done; returns the users made hot. O(uids) rebuilds.
    /// With `laggingThrough`, a user that lags (``catchUpLagging(_:through:)``) is made hot
    /// through that sequence; one whose rebuild fails stays lagging.
    func warm(_ uids: [String], threads: Int, cursor: Cursor = Cursor(), laggingThrough: Int64? = nil,
              while proceed: @escaping @Sendable () -> Bool = { true }) -> Int {
        guard !uids.isEmpty else { return 0 }
        return BackgroundThread.runEach(name: "osprey-warm", count: min(max(threads, 1), uids.count)) { _ in
            var made = 0
            while proceed(), let i = cursor.next(below: uids.count) {
                if let through = laggingThrough, (try? self.catchUpLagging(uids[i], through: through)) == true {
                    made += 1
                } else if self.warm(uids[i]) {
                    made += 1
                }
            }
            return made
        }.reduce(0, +)
    }

    /// Names the users a warm start should make hot (the list is cut to ``hotUsers``). O(users).
    public func setWarmStart(_ uids: [String]) {
        warmStartUsers.withLock { $0 = Array(uids.prefix(hotUsers)) }
    }

    /// The users a warm start should make hot (see ``warm(_:)``). They stay named until the warm
    /// start names the ones it did not reach (none, once it finished), so a snapshot taken
    /// meanwhile records them as hot. O(1).
    public var warmStartList: [String] { warmStartUsers.withLock { $0 } }

    /// Registers a read of cold user `uid`'s state (a ticket, under the stripe lock) and returns
    /// it; the read calls `keep` under the lock with what it read if the ticket still holds then
    /// (no promotion since, the user still cold, no failed rebuild), and returns what `keep`
    /// returned (false when not called). Nil when there is nothing to read (see ``prefetch(_:)``;
    /// `limited`: at most ``prefetchLimit`` reads per stripe).
    private func readAhead(
        _ uid: String, limited: Bool, keep: @escaping @Sendable (inout Stripe, Int32, UserWeights) -> Bool
    ) -> (@Sendable () -> Bool)? {
        guard let rebuild else { return nil }
        let ticket = stripes.withLock(uid) { st -> UInt64? in
            guard let slot = st.slots[uid], st.hot[slot] == nil, st.unlearned[slot] == nil,
                  st.prefetched[slot] == nil, st.prefetching[slot] == nil,
                  !limited || st.prefetched.count + st.prefetching.count < Self.prefetchLimit
            else { return nil }
            st.nextTicket += 1
            st.prefetching[slot] = st.nextTicket
            return st.nextTicket
        }
        guard let ticket else { return nil }
        return { [self] in
            // The learning step may have promoted the user while this read waited for a thread.
            let due = stripes.withLock(uid) { st in st.slots[uid].map { st.prefetching[$0] == ticket } ?? false }
            guard due else { return false }
            let w = try? rebuild(uid, nil)
            return stripes.withLock(uid) { st in
                guard let slot = st.slots[uid], st.prefetching[slot] == ticket else { return false }
                st.prefetching[slot] = nil
                guard let w, st.hot[slot] == nil, st.unlearned[slot] == nil else { return false }
                return keep(&st, slot, w)
            }
        }
    }
}
