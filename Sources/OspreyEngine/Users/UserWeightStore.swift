import OspreyMath
import OspreyModel
import OspreyStorage
import Synchronization

/// Every user's state for one model, in two tiers, sharded by uid over striped locks
/// (docs/architecture.md, "Threads and locks"): an update locks one stripe, so users on other stripes are read and written
/// concurrently.
///
/// - The **cold tier** holds every user's weights `w_u` (Float32, padded to the stride) and the
///   small fields the API reports (observations, running loss, bootstrapped) in flat per-stripe
///   arrays: about d·4 + 80 bytes a user. `predict` and `topk` read only this tier, so reads never
///   promote a user or disturb the hot tier.
/// - The **hot tier** holds the full ridge state of at most ``hotUsers`` recently learned users,
///   packed (``PackedRidgeState``: 10.6 KB at d = 50 against 18.8 KB unpacked; a learn unpacks
///   and repacks it, O(d²)), evicted by CLOCK (a second-chance approximation of LRU).
///   Learning an observation of a cold user first rebuilds its full state with ``Rebuild`` (its
///   snapshot row), then promotes it. The rebuild runs under the user's stripe lock, so readers of
///   that stripe wait for it (a point read, about 40 µs at 1M users with the snapshot DB in the
///   page cache), unless the state was read ahead off the lock (``prefetch(_:)``).
///
/// Only *clean* users are evicted — ones whose state the snapshot store already holds exactly — so
/// a cold user's snapshot row is its state, and a rebuild reads no log. The one exception: when a
/// rebuild fails (the store could not be read), the observation stays in the log unlearned; the
/// store remembers the user's first unlearned sequence (``earliestUnlearned``), the next rebuild
/// replays the user's log entries from there, and snapshots keep their sequence below it, so a
/// restart replays it too. A user changed since the last snapshot (dirty, or being saved) stays
/// hot until the snapshot has saved it: the bound is soft between snapshots (at most
/// ``hotUsers`` plus the users changed since the last snapshot). The capacity is split evenly
/// over the stripes (``hotUsers``/64 each, rounded up).
public final class UserWeightStore: Sendable {
    /// Rebuilds the full state of a cold user `uid` from its snapshot row, then learns the user's
    /// logged observations with sequence in `replay` (nil: none; only after a failed rebuild).
    /// O(d²), plus a read of the log range when replaying.
    public typealias Rebuild = @Sendable (_ uid: String, _ replay: Range<Int64>?) throws -> UserWeights

    /// What a reader sees of one user: the cold tier's copy, always current.
    public struct View {
        /// `w_u`, padded to the stride with zeros; valid only inside the read.
        public let weights: UnsafePointer<Float>
        public let observations: Int
        public let runningLoss: Double?
        public let bootstrapped: Bool
    }

    struct Stripe {
        var slots: [String: Int32] = [:]
        var uids: [String] = []
        /// `stride` floats per slot.
        var weights: [Float] = []
        var observations: [Int] = []
        /// NaN for none.
        var runningLoss: [Double] = []
        var bootstrapped: [Bool] = []
        var hot: [Int32: Hot] = [:]
        /// The hot slots, in CLOCK order.
        var ring: [Int32] = []
        var hand = 0
        /// Changed since the last snapshot.
        var dirty: Set<Int32> = []
        /// Taken by a snapshot that has not finished saving them.
        var saving: Set<Int32> = []
        /// Hot users that are neither dirty nor being saved: the ones eviction may drop.
        var cleanHot = 0
        /// Cold users whose rebuild failed: the sequence of the first observation not learned.
        var unlearned: [Int32: Int64] = [:]
        /// Cold users' full states read ahead of learning (``prefetch(_:)``), and the reads under
        /// way, by ticket. Both are dropped when the user turns hot, so a state read before a
        /// promotion is never used after it (the user's row may be rewritten once it is hot).
        var prefetched: [Int32: UserWeights] = [:]
        var prefetching: [Int32: UInt64] = [:]
        var nextTicket: UInt64 = 0
        /// Users a cluster node adopted (``adopt(_:_:)``): the log sequence their state reflects.
        var adoptedThrough: [Int32: Int64] = [:]
        /// While a snapshot at one cut writes the states it shares (``takeChangedAtCut(states:)``):
        /// the slots it took that learned since, each learn copying its state away from the
        /// shared one (nil: no such snapshot; a slot may be named more than once).
        var learnedSinceCut: [Int32]?
        /// Slots below this have a snapshot row of the state's version (set by ``beginCatchUp(from:)``,
        /// before the catch-up adds users): only those can be demoted and rebuilt.
        var storedSlots: Int32 = 0

        func isClean(_ slot: Int32) -> Bool { !dirty.contains(slot) && !saving.contains(slot) }

        mutating func slot(for uid: String, stride: Int) -> (Int32, isNew: Bool) {
            if let s = slots[uid] { return (s, false) }
            let s = Int32(uids.count)
            slots[uid] = s
            uids.append(uid)
            weights.append(contentsOf: repeatElement(0, count: stride))
            observations.append(0)
            runningLoss.append(.nan)
            bootstrapped.append(false)
            return (s, true)
        }

        /// Copies a full state's weights and small fields into the cold tier. O(d).
        mutating func writeThrough(_ w: borrowing UserWeights, slot: Int32, stride: Int) {
            let i = Int(slot)
            precondition(w.ridge.stride == stride, "a user's state has stride \(w.ridge.stride), the model's is \(stride)")
            w.ridge.weights.withUnsafeBufferPointer { src in
                weights.withUnsafeMutableBufferPointer { dst in
                    (dst.baseAddress! + i * stride).update(from: src.baseAddress!, count: stride)
                }
            }
            observations[i] = w.observations
            runningLoss[i] = w.runningLoss ?? .nan
            bootstrapped[i] = w.bootstrapped
        }

        /// The full state of a hot user: its ridge state unpacked, its small fields. O(d²).
        func weights(hot slot: Int32) -> UserWeights? { captured(hot: slot)?.weights }

        /// A hot user's state as ``Captured``, its ridge statistics shared, not copied. O(1).
        func captured(hot slot: Int32) -> Captured? {
            Captured(slot, hot: hot, observations: observations, runningLoss: runningLoss, bootstrapped: bootstrapped)
        }

        /// Makes a cold user hot with `state` (``makeHot(_:referenced:)``); a state read ahead
        /// for it, or a read under way, is dropped. Its `referenced` gives it a second chance
        /// before the CLOCK hand evicts it.
        mutating func promote(_ slot: Int32, _ state: Hot, clean: Bool) {
            prefetched[slot] = nil
            prefetching[slot] = nil
            hot[slot] = state
            ring.append(slot)
            if clean { cleanHot += 1 }
        }

        /// Drops clean hot users, CLOCK order, until at most `limit` are hot or none is clean.
        /// Returns how many were dropped. O(hot) at worst, O(1) amortized.
        mutating func evict(limit: Int) -> Int {
            var evicted = 0
            // Two passes of the hand find every clean user `cleanHot` counts; the
            // bound only guards against a miscount turning into a spin.
            var steps = 3 * ring.count + 2
            while hot.count > limit, cleanHot > 0, steps > 0 {
                steps -= 1
                if hand >= ring.count { hand = 0 }
                let slot = ring[hand]
                guard isClean(slot) else { hand += 1; continue }
                if hot[slot]!.referenced {
                    hot[slot]!.referenced = false
                    hand += 1
                    continue
                }
                hot[slot] = nil
                ring[hand] = ring[ring.count - 1]
                ring.removeLast()
                cleanHot -= 1
                evicted += 1
            }
            return evicted
        }
    }

    /// The padded row stride of every user's weights (the version's feature stride).
    public let stride: Int
    /// The most users whose full state is kept (`Int.max`: all of them, no tiering).
    public let hotUsers: Int
    /// Rebuilds, evictions and user counts, carried on by the model's next states.
    public let metrics: UserMetrics
    /// Users, and of them the hot ones, over every stripe.
    private let userTotal = Atomic<Int>(0), hotTotal = Atomic<Int>(0)
    let perStripe: Int
    /// How a cold user's full state is rebuilt (nil: never evicted, nothing to rebuild).
    let rebuild: Rebuild?
    let stripes = StripedLocks { Stripe() }
    /// The users a warm start makes hot (``warmStartList``).
    let warmStartUsers = Mutex<[String]>([])
    /// What the state learns while it catches up before serving, for the users it demotes
    /// (``demote(toAtMost:)``).
    public let recent: RecentObservations
    /// Where this store's hot states go when it is freed during an install, and where its
    /// promotions take storage from (shared by the model's states).
    let recycler: HotStateRecycler

    /// An empty store for weights padded to `stride`. Without `rebuild` nothing is ever evicted
    /// (every user stays hot, whatever `hotUsers` says).
    /// `recent` is the window `rebuild` reads a demoted user's observations from.
    /// `recycler` is the model's (``HotStateRecycler``).
    init(stride: Int, hotUsers: Int = .max, rebuild: Rebuild? = nil, metrics: UserMetrics = UserMetrics(),
         recent: RecentObservations = RecentObservations(), recycler: HotStateRecycler = HotStateRecycler()) {
        precondition(hotUsers >= 0, "hotUsers must not be negative")
        self.recent = recent
        self.recycler = recycler
        self.stride = stride
        self.rebuild = rebuild
        self.metrics = metrics
        let tiered = rebuild != nil && hotUsers != .max
        self.hotUsers = tiered ? hotUsers : .max
        let n = StripedLocks<Stripe>.stripeCount
        perStripe = tiered ? (hotUsers + n - 1) / n : .max
    }

    /// Hands the hot users' packed states to the recycler, which keeps them if an install is
    /// under way (``HotStateRecycler``); otherwise they are freed with the store.
    deinit {
        stripes.forEach { st in
            recycler.deposit(st.hot.values)
            st.hot = [:]
        }
    }

    /// Makes room for `users` users in the cold tier (avoids regrowing its arrays while loading).
    public func reserve(users: Int) {
        let n = users / StripedLocks<Stripe>.stripeCount + users / (8 * StripedLocks<Stripe>.stripeCount) + 16
        stripes.forEach { st in
            st.slots.reserveCapacity(n)
            st.uids.reserveCapacity(n)
            st.weights.reserveCapacity(n * stride)
            st.observations.reserveCapacity(n)
            st.runningLoss.reserveCapacity(n)
            st.bootstrapped.reserveCapacity(n)
        }
    }

    /// Adds a clean user known only by its compact row (cold). O(d).
    public func insertCold(_ stored: StoredWeights) {
        let isNew = stripes.withLock(stored.uid) { st -> Bool in
            let (slot, isNew) = st.slot(for: stored.uid, stride: stride)
            let i = Int(slot)
            st.weights.withUnsafeMutableBufferPointer { dst in
                let p = dst.baseAddress! + i * stride
                p.update(repeating: 0, count: stride)
                stored.weights.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: min($0.count, stride)) }
            }
            st.observations[i] = stored.observations
            st.runningLoss[i] = stored.runningLoss ?? .nan
            st.bootstrapped[i] = stored.bootstrapped
            return isNew
        }
        if isNew { tally(users: 1, hot: 0) }
    }

    /// Adds a clean user with its full state (hot, as just loaded from a snapshot). O(d).
    public func insertHot(_ uid: String, _ weights: UserWeights) {
        let (isNew, promoted, evicted) = stripes.withLock(uid) { st -> (Bool, Bool, Int) in
            let (slot, isNew) = st.slot(for: uid, stride: stride)
            st.writeThrough(weights, slot: slot, stride: stride)
            let promoted = st.hot[slot] == nil
            if promoted {
                st.promote(slot, makeHot(weights.ridge, referenced: true), clean: st.isClean(slot))
            } else {
                st.hot[slot] = Hot(weights.ridge, referenced: true)
            }
            return (isNew, promoted, st.evict(limit: perStripe))
        }
        if evicted > 0 { metrics.evictions.increment(by: evicted) }
        tally(users: isNew ? 1 : 0, hot: (promoted ? 1 : 0) - evicted)
    }

    /// Calls `body` with a view of the user (nil for a user never seen) under the stripe lock,
    /// from the cold tier: no promotion, no I/O. O(1) plus `body`.
    public func read<R>(_ uid: String, _ body: (View?) throws -> R) rethrows -> R {
        try stripes.withLock(uid) { st in
            guard let slot = st.slots[uid] else { return try body(nil) }
            let i = Int(slot)
            let loss = st.runningLoss[i]
            return try st.weights.withUnsafeBufferPointer { w in
                try body(View(weights: w.baseAddress! + i * stride, observations: st.observations[i],
                              runningLoss: loss.isNaN ? nil : loss, bootstrapped: st.bootstrapped[i]))
            }
        }
    }

    /// A hot user's state, taken in O(1) under a lock and unpacked later (``weights``): its
    /// packed ridge statistics are shared copy-on-write, so the user may go on learning meanwhile.
    struct Captured: Sendable {
        let ridge: Hot
        let observations: Int
        let runningLoss: Double?
        let bootstrapped: Bool

        /// The full state as it was when captured. O(d²).
        var weights: UserWeights {
            UserWeights(ridge: ridge.unpacked, observations: observations, runningLoss: runningLoss, bootstrapped: bootstrapped)
        }
    }

    /// The user's state if it is hot (nil if cold or never seen), captured under the stripe lock
    /// without unpacking it (see ``Captured``). A user changed since the last snapshot is always
    /// hot. O(1).
    func captureHot(_ uid: String) -> Captured? {
        stripes.withLock(uid) { st in st.slots[uid].flatMap { st.captured(hot: $0) } }
    }

    /// Calls `body` with the user's full state if it is hot (nil if cold or never seen), under the
    /// stripe lock. A user changed since the last snapshot is always hot. O(1) plus `body`.
    public func readHot<R>(_ uid: String, _ body: (borrowing UserWeights?) throws -> R) rethrows -> R {
        try stripes.withLock(uid) { st in
            guard let slot = st.slots[uid], let w = st.weights(hot: slot) else { return try body(nil) }
            return try body(w)
        }
    }

    /// The user's full state, hot or cold (nil for a user never seen), without promoting it: a
    /// cold user is rebuilt from stored state and the log as committed so far. O(1) when hot, a
    /// rebuild when cold.
    /// - Throws: what ``Rebuild`` throws.
    public func fullState(_ uid: String) throws -> UserWeights? {
        try stripes.withLock(uid) { st -> UserWeights? in
            guard let slot = st.slots[uid] else { return nil }
            if let w = st.weights(hot: slot) { return w }
            guard let rebuild else { return nil }
            return try rebuild(uid, st.unlearned[slot].map { $0..<Int64.max })
        }
    }

    /// Changes one user's full state under the stripe lock and marks the user for the next
    /// snapshot. A cold user is first rebuilt and promoted (having learned, after a failed
    /// rebuild, its logged observations before `before`); `create` supplies the starting state of
    /// a user never seen. Afterwards clean users beyond the stripe's share of ``hotUsers`` are
    /// evicted. O(1) plus `body` when hot; plus a rebuild when cold.
    /// - Throws: what ``Rebuild`` throws; the user then stays cold and unchanged, and `before` (the
    ///   sequence of the observation being learned) is remembered as not learned.
    public func update<R>(_ uid: String, before: Int64, create: () -> UserWeights,
                          _ body: (inout UserWeights) throws -> R) throws -> R {
        let (result, isNew, promoted, evicted) = try stripes.withLock(uid) { st -> (R, Bool, Bool, Int) in
            let (slot, isNew) = st.slot(for: uid, stride: stride)
            var w: UserWeights
            let wasHot = st.hot[slot] != nil
            if wasHot {
                w = st.weights(hot: slot)!
                if st.isClean(slot) { st.cleanHot -= 1 }
            } else {
                if isNew {
                    w = create()
                } else if let rebuild {
                    let clock = ContinuousClock(), start = clock.now
                    if st.unlearned[slot] == nil, let ready = st.prefetched.removeValue(forKey: slot) {
                        w = ready
                        metrics.prefetchedRebuilds.increment()
                    } else {
                        do {
                            w = try rebuild(uid, st.unlearned[slot].map { $0..<before })
                        } catch {
                            st.unlearned[slot] = min(st.unlearned[slot] ?? before, before)
                            throw error
                        }
                    }
                    st.unlearned[slot] = nil
                    metrics.rebuilds.increment()
                    metrics.rebuildSeconds.increment(by: Double((clock.now - start) / .nanoseconds(1)) * 1e-9)
                } else {
                    preconditionFailure("a cold user in a store that cannot rebuild")
                }
            }
            st.dirty.insert(slot)
            let r = try body(&w)
            if wasHot {
                st.hot[slot]!.store(w.ridge)
                st.hot[slot]!.referenced = true
            } else {
                st.promote(slot, makeHot(w.ridge, referenced: true), clean: false)  // dirty now
            }
            st.writeThrough(w, slot: slot, stride: stride)
            if wasHot, st.learnedSinceCut != nil, st.saving.contains(slot) { st.learnedSinceCut!.append(slot) }
            return (r, isNew, !wasHot, st.evict(limit: perStripe))
        }
        if evicted > 0 { metrics.evictions.increment(by: evicted) }
        if isNew || promoted || evicted > 0 { tally(users: isNew ? 1 : 0, hot: (promoted ? 1 : 0) - evicted) }
        return result
    }

    /// The number of users. O(1).
    public var count: Int { userTotal.load(ordering: .relaxed) }

    /// The number of users whose full state is in memory. O(1).
    public var hotCount: Int { hotTotal.load(ordering: .relaxed) }

    /// Counts users added and users turned hot (negative: evicted), and records the counts in
    /// ``metrics`` (only the serving state's store does: ``UserMetrics/live``).
    func tally(users: Int, hot: Int) {
        let all = users == 0 ? count : userTotal.add(users, ordering: .relaxed).newValue
        let hotNow = hot == 0 ? hotCount : hotTotal.add(hot, ordering: .relaxed).newValue
        metrics.record(users: all, hot: hotNow)
    }
}

extension UserWeightStore.Captured {
    /// Slot `slot`'s state from a stripe's columns (a live stripe's, or a snapshot cut's), or
    /// nil when it is not hot. O(1).
    init?(_ slot: Int32, hot: [Int32: UserWeightStore.Hot], observations: [Int], runningLoss: [Double], bootstrapped: [Bool]) {
        guard let h = hot[slot] else { return nil }
        let i = Int(slot), loss = runningLoss[i]
        self.init(ridge: h, observations: observations[i], runningLoss: loss.isNaN ? nil : loss, bootstrapped: bootstrapped[i])
    }
}
