import OspreyStorage

/// The items each user of one model has rated or observed (initial training data and the log),
/// for top-k's `exclude_observed`. One per served model, shared by its serving states (a retrain,
/// a rollback and a challenger keep it), since what a user observed does not depend on the version.
///
/// Backed by the store (``init(load:)``): the training ratings and the items the snapshots have
/// recorded are read one user at a time when a request asks, so nothing is held for a million
/// users and nothing is loaded at startup; the items learned since are kept in memory
/// (*pending*) until a snapshot records them (``takeAll()``, ``take(_:)``) — at most the
/// observations of one snapshot interval. After a crash the replay of the log past the snapshot
/// learns them again. Tests without a store keep everything in memory (``init()``).
public final class ObservedItems: Sendable {
    private let stripes = StripedLocks { [String: [String]]() }
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
        stripes.withLock(uid) { $0[uid, default: []].append(item) }
    }

    /// The items `uid` has rated or observed, each once. O(r) for r items, plus the read.
    /// - Throws: what the store's read throws.
    public func items(of uid: String) throws -> Set<String> {
        var items = Set(try load?(uid) ?? [])
        stripes.withLock(uid) { items.formUnion($0[uid] ?? []) }
        return items
    }

    /// Takes every pending item, for a snapshot to record (none when not backed by a store).
    /// O(pending).
    func takeAll() -> [ObservedItem] {
        guard load != nil else { return [] }
        var out: [ObservedItem] = []
        stripes.forEach { pending in
            for (uid, items) in pending { out += items.map { ObservedItem(uid: uid, item: $0) } }
            pending.removeAll()
        }
        return out
    }

    /// Takes the pending items of `uids`, for a snapshot to record with their states. O(their items).
    func take(_ uids: some Sequence<String>) -> [ObservedItem] {
        guard load != nil else { return [] }
        var out: [ObservedItem] = []
        for uid in uids {
            if let items = stripes.withLock(uid, { $0.removeValue(forKey: uid) }) {
                out += items.map { ObservedItem(uid: uid, item: $0) }
            }
        }
        return out
    }

    /// Makes items pending again after recording them failed. O(items).
    func putBack(_ items: [ObservedItem]) {
        for i in items { insert(uid: i.uid, item: i.item) }
    }
}
