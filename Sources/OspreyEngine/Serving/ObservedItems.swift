import OspreyStorage

/// The items each user of one model has rated or observed (initial training data and the log),
/// for top-k's `exclude_observed`. One per served model, shared by its serving states (a retrain,
/// a rollback and a challenger keep it), since what a user observed does not depend on the version.
///
/// Backed by the store (``init(load:)``): the training ratings and the items the snapshots have
/// recorded are read one user at a time when a request asks, so nothing is held for a million
/// users and nothing is loaded at startup; the items learned since are kept in memory
/// (*pending*) until a snapshot records them — at most the observations of one snapshot
/// interval. After a crash the replay of the log past the snapshot learns them again. Tests
/// without a store keep everything in memory (``init()``).
///
/// Recording is two steps, so an item is never missing from ``items(of:)``, whose answers the
/// prediction cache keeps: ``takeAll()`` or ``take(_:)`` marks pending items as being saved (still
/// read from memory), then ``finishSaving(_:)`` drops them once the store holds them, or
/// ``putBack(_:)`` makes them pending again after a failed write.
public final class ObservedItems: Sendable {
    struct Stripe {
        /// Items not yet handed to a write, and items being written, by user.
        var pending: [String: [String]] = [:]
        var saving: [String: [String]] = [:]
    }

    private let stripes = StripedLocks { Stripe() }
    private let load: (@Sendable (String) throws -> [String])?

    /// Everything in memory, filled by ``insert(uid:item:)``; nothing is ever taken.
    init() {
        load = nil
    }

    /// Recorded items read on demand: `load` returns one user's rated and recorded items (repeats
    /// allowed).
    init(load: @escaping @Sendable (String) throws -> [String]) {
        self.load = load
    }

    /// The store's record: the model's training ratings and the items its snapshots recorded.
    static func stored(in stores: Stores, model: String) -> ObservedItems {
        ObservedItems { uid in
            try stores.versions.trainingItems(model: model, uid: uid) + stores.snapshots.observedItems(model: model, uid: uid)
        }
    }

    /// Records that `uid` observed `item` (pending until a snapshot records it). O(1).
    func insert(uid: String, item: String) {
        stripes.withLock(uid) { $0.pending[uid, default: []].append(item) }
    }

    /// The items `uid` has rated or observed, each once. Memory is read before the store: an item
    /// a write moves from one to the other is in the store before it leaves memory, so it is
    /// always found. O(r) for r items, plus the read.
    /// - Throws: what the store's read throws.
    public func items(of uid: String) throws -> Set<String> {
        var items = stripes.withLock(uid) { Set(($0.pending[uid] ?? []) + ($0.saving[uid] ?? [])) }
        items.formUnion(try load?(uid) ?? [])
        return items
    }

    /// The items of `uid` held in memory (pending or being saved), in order. O(their items).
    func inMemory(of uid: String) -> [String] {
        stripes.withLock(uid) { ($0.saving[uid] ?? []) + ($0.pending[uid] ?? []) }
    }

    /// Takes every pending item for a write to record (none when not backed by a store); they
    /// are read from memory until ``finishSaving(_:)``. O(pending).
    func takeAll() -> [ObservedItem] { takeAllAtCut().items }

    /// Records every pending item in the snapshot store now (what a new version's snapshot
    /// says it reflects must be recorded first); a failed write puts them back.
    /// - Throws: what the store's write throws.
    func saveAll(to stores: Stores, model: String) throws {
        let pending = takeAll()
        do {
            try stores.snapshots.saveObservedItems(model: model, pending)
            finishSaving(pending)
        } catch {
            putBack(pending)
            throw error
        }
    }

    /// Every user's pending items as of one moment (a snapshot's cut): each stripe's pending
    /// map, shared with the stripe's record of what is being saved (copy-on-write), so taking it
    /// is O(stripes) under the learning lock and listing it O(pending) outside.
    struct PendingAtCut: Sendable {
        fileprivate var parts: [[String: [String]]] = []

        /// The items, by user. O(pending).
        var items: [ObservedItem] {
            parts.flatMap { part in part.flatMap { uid, items in items.map { ObservedItem(uid: uid, item: $0) } } }
        }
    }

    /// ``takeAll()`` as of now, listed later (``PendingAtCut``). O(stripes), or O(pending) for a
    /// stripe whose last write has not finished.
    func takeAllAtCut() -> PendingAtCut {
        guard load != nil else { return PendingAtCut() }
        var cut = PendingAtCut()
        stripes.forEach { st in
            guard !st.pending.isEmpty else { return }
            cut.parts.append(st.pending)
            if st.saving.isEmpty {
                st.saving = st.pending
            } else {
                for (uid, items) in st.pending { st.saving[uid, default: []] += items }
            }
            st.pending = [:]
        }
        return cut
    }

    /// Takes the pending items of `uids`, for a snapshot to record with their states; they are
    /// read from memory until ``finishSaving(_:)``. O(their items).
    func take(_ uids: some Sequence<String>) -> [ObservedItem] {
        guard load != nil else { return [] }
        var out: [ObservedItem] = []
        for uid in uids {
            let items = stripes.withLock(uid) { st -> [String]? in
                guard let items = st.pending.removeValue(forKey: uid) else { return nil }
                st.saving[uid, default: []] += items
                return items
            }
            if let items { out += items.map { ObservedItem(uid: uid, item: $0) } }
        }
        return out
    }

    /// Forgets the items of `uid` held in memory, pending or being saved (a user's erasure, run
    /// while no snapshot is writing: docs/operations.md "Erasing a user"). Returns how many. O(1).
    @discardableResult
    func remove(_ uid: String) -> Int {
        stripes.withLock(uid) { st in
            (st.pending.removeValue(forKey: uid)?.count ?? 0) + (st.saving.removeValue(forKey: uid)?.count ?? 0)
        }
    }

    /// Drops items a write has recorded in the store. O(items · their user's items being saved).
    func finishSaving(_ items: [ObservedItem]) {
        for i in items {
            stripes.withLock(i.uid) { st in
                guard var saving = st.saving[i.uid], let at = saving.firstIndex(of: i.item) else { return }
                saving.remove(at: at)
                st.saving[i.uid] = saving.isEmpty ? nil : saving
            }
        }
    }

    /// Makes items being saved pending again after recording them failed. O(items · their
    /// user's items being saved).
    func putBack(_ items: [ObservedItem]) {
        finishSaving(items)
        for i in items { insert(uid: i.uid, item: i.item) }
    }
}
