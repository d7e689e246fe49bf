import OspreyMath
import OspreyModel
import OspreyStorage
import Synchronization

/// The item side of online learning in serving (docs/architecture.md, "Items learn online"):
/// each item's row is a ridge regression on its raters' weights (``ItemRidge``), and every
/// learned observation is one exact step of the item's state before the user learns it against
/// the item's new row — the order measured best (bench/results/2026-11-21-online-vs-retrain.md).
///
/// One per serving state with item updates on. It is written only by the learning step, under
/// the learning lock (observations are learned one at a time in log order), so an item's state
/// is a function of the version and the log, like a user's. Its own lock only keeps that
/// writer apart from the readers: a snapshot's cut (``takeChanged()``), the publisher
/// (``takeUnpublished()``) and `GET …/items/{item}`.
///
/// Serving reads never see these states: answers use the rows last *published* to the
/// state's features (``ServingState/publishItems()``), at an interval, so cached answers stay
/// valid between publications. Learning uses the live rows.
///
/// On a cluster node (``Shared``) every node learns its own users' observations of the same
/// items: each keeps what it learned of each item as sums (``RidgeStatistics``), publishes them
/// and folds in the others' (``ItemExchange``; docs/architecture.md, "Items on several nodes").
/// An item's state is then the version's start plus every node's sums, solved again at each
/// fold, so nodes that have folded the same publications hold the same states
/// (ItemLearner+Exchange.swift).
///
/// Memory: one ridge state per item with state, packed as a hot user's is (``Item``; ≈ 10.6 KB
/// at d = 50, against ≈ 18 KB unpacked): every trained item from the start, a catalogue item
/// from its first observation. On
/// a cluster node, also each learned item's start and each node's sums, ≈ 10.6 KB per node.
///
/// Tiered (``hotItems`` below the items with state; a lone process only), it holds at most
/// about ``hotItems`` states: after each complete snapshot (``evictClean()``) the least recently
/// learned items whose state is stored as it is here — not learned since the snapshot's cut,
/// their rows published — go *cold*, and only their observation count stays. A cold item's
/// state is read back from the store (``ColdStates``) when it next learns. Its published row is
/// the row of that very state, so tiering changes where a state lives, never a value.
final class ItemLearner: Sendable {
    /// One item's online state.
    struct Item: Sendable {
        /// Compact, as a hot user's (``CompactRidgeState``).
        private var state: CompactRidgeState
        /// Observations learned online.
        var observations: Int
        /// The log sequence the state reflects: a replay skips the observations up to it.
        var seq: Int64

        init(ridge: RidgeState, observations: Int, seq: Int64) {
            state = CompactRidgeState(ridge)
            self.observations = observations
            self.seq = seq
        }

        /// The ridge state, bit for bit. Reading it unpacks, O(d²); setting it repacks into the
        /// packed arrays when they are not shared (a snapshot's cut shares them until then), so
        /// a learn allocates no new packed arrays. O(d²).
        var ridge: RidgeState {
            get { state.unpacked }
            set { state.store(newValue) }
        }

        /// Whether the state is held packed. O(1).
        var isPacked: Bool { state.isPacked }

        /// Writes the item's row (``ItemRidge/row(of:into:offset:)``) into `row` and returns its
        /// offset, without unpacking. O(d).
        func row(_ itemRidge: ItemRidge, into row: UnsafeMutablePointer<Float>) -> Float {
            state.withWeights { itemRidge.row(weights: $0, into: row) }
        }
    }

    /// Reads a cold item's stored state (``SnapshotStore/loadItemState(model:version:item:dimension:)``),
    /// by item id; nil when the store has none.
    typealias ColdStates = @Sendable (_ item: String) throws -> Item?

    struct Live {
        /// The hot items, by serving row (``ServingFeatures``).
        var items: [Int: Item]
        /// Tiered: the cold items (state stored, not held), with their observations learned online.
        var cold: [Int: Int] = [:]
        /// Rows of items that went cold before their row was published (at a start): published
        /// with the next ``takeUnpublished(stride:)``, ``ItemRidge/dimension`` entries each.
        var coldRows: [Int: (features: [Float], offset: Float)] = [:]
        /// Tiered: when each hot item last learned, by ``clock``.
        var lastLearned: [Int: UInt64] = [:]
        var clock: UInt64 = 0
        /// Cold states that could not be read when their item was to learn.
        var unreadable = 0
        /// Changed since the last snapshot's cut.
        var changed: Set<Int> = []
        /// While a snapshot at one cut writes the states it shares (``takeChangedAtCut()``): the
        /// rows learned since, each learn copying a state the cut shares, since the snapshot
        /// last asked (nil: no such snapshot; a row may be named more than once).
        var learnedSinceCut: [Int]?
        /// Changed since the last publication.
        var unpublished: Set<Int> = []
        /// A cluster node's share of the items (nil on a lone process).
        var shared: Shared?
    }

    /// What a cluster node keeps of the items beyond their states.
    struct Shared {
        /// This node's name: its entries in ``ledger`` are what it learned.
        let node: String
        /// Every node's sums, as far as this node has merged them.
        var ledger = ContributionLedger()
        /// Each item's state before any node's observation (the version's), by row: what a
        /// fold adds the sums to. Recorded when the item first learns or folds.
        var start: [Int: Item] = [:]
        /// Items whose own sums changed since the last exchange, by id.
        var unexchanged: Set<String> = []
        /// Rows learned here since the last fold: they are solved again exactly at the next.
        var learnedSinceFold: Set<Int> = []
        /// Counts each row's learning, so a fold solved outside the lock installs only a state
        /// that nothing learned into meanwhile.
        var learnings: [Int: UInt64] = [:]
        /// This node's last publication.
        var revision: Int64 = 0
    }

    /// The regression each item's row solves.
    let ridge: ItemRidge
    /// The precision of the prior of an item first learned from its computed vector (its
    /// attributes, or the mean item): the version's λ.
    let lambda: Float
    /// The item states held at most, give or take what learned since the last snapshot
    /// (``Manager/Configuration/hotItems``); `Int.max`: every one (untiered).
    let hotItems: Int
    private let coldStates: ColdStates?
    let live: Mutex<Live>

    /// A learner with no item states yet (``restore(_:)`` gives them): on a lone process, or with
    /// `node`, on the cluster node of that name (untiered). Tiered when `hotItems` is below
    /// `Int.max`, reading cold states from `coldStates`. O(1).
    init(ridge: ItemRidge, lambda: Float, node: String? = nil, hotItems: Int = .max, coldStates: ColdStates? = nil) {
        precondition(hotItems == .max || (node == nil && coldStates != nil), "a tiered learner is a lone process's, with a store to read")
        precondition(hotItems > 0, "at least one hot item")
        self.ridge = ridge
        self.lambda = lambda
        self.hotItems = hotItems
        self.coldStates = coldStates
        live = Mutex(Live(items: [:], shared: node.map { Shared(node: $0) }))
    }

    /// The item states held, and the cold ones (stored only).
    var counts: (hot: Int, cold: Int) { live.withLock { ($0.items.count, $0.cold.count) } }

    /// The item states held packed (``Item``). O(hot items).
    var packedCount: Int { live.withLock { $0.items.values.count(where: \.isPacked) } }

    /// Cold states that could not be read when their item was to learn: those observations were
    /// learned by their users only.
    var unreadableColdStates: Int { live.withLock { $0.unreadable } }

    /// True on a cluster node.
    var isShared: Bool { live.withLock { $0.shared != nil } }

    /// Gives items their states, by serving row, as the store holds them (a snapshot's, or a
    /// version's start, before anything learns), to be published with the serving state.
    /// Tiered, those beyond ``hotItems`` go cold at once, only their rows kept for the
    /// publication: a start restores a catalogue a chunk at a time without holding every state.
    /// O(items · (d + log items)).
    func restore(_ items: [Int: Item]) {
        live.withLock { l in
            for (row, item) in items.sorted(by: { $0.key < $1.key }) {
                (l.cold[row], l.coldRows[row]) = (nil, nil)
                if l.items[row] != nil || l.items.count < hotItems {
                    l.items[row] = item
                    l.unpublished.insert(row)
                } else {
                    var f = [Float](repeating: 0, count: ridge.dimension)
                    let offset = f.withUnsafeMutableBufferPointer { item.row(ridge, into: $0.baseAddress!) }
                    l.coldRows[row] = (f, offset)
                    l.cold[row] = item.observations
                }
            }
        }
    }

    /// Tiered, sends the least recently learned items whose state the store holds as it is here
    /// (not learned since the last snapshot's cut, their rows published) cold, down to
    /// ``hotItems``: after a snapshot completes. Returns how many went cold. O(hot · log hot).
    @discardableResult
    func evictClean() -> Int {
        live.withLock { l in
            guard hotItems != .max, l.items.count > hotItems else { return 0 }
            let clean = l.items.keys.filter { !l.changed.contains($0) && !l.unpublished.contains($0) }
            let doomed = clean.sorted { (l.lastLearned[$0] ?? 0, $0) < (l.lastLearned[$1] ?? 0, $1) }.prefix(l.items.count - hotItems)
            for row in doomed {
                l.cold[row] = l.items.removeValue(forKey: row)!.observations
                l.lastLearned[row] = nil
            }
            return doomed.count
        }
    }

    /// Learns observation `seq` with label `label`, by a user whose weights are `userWeights`,
    /// into row `row`'s item: an item without state starts from its served row (`features`) as
    /// a prior of precision ``lambda``. On a lone process it is skipped when the item's state
    /// already reflects `seq` (a replay over a snapshot); on a cluster node (where a user's
    /// adoption keeps it from learning twice) it is added to this node's sums too. O(d²).
    func learn(row: Int, userWeights w: UnsafePointer<Float>, label: Float, seq: Int64, features: ServingFeatures) {
        live.withLock { l in
            if l.items[row] == nil, l.cold[row] != nil {
                // Read back under the lock: the learning step waits for it, as for a cold user.
                guard let stored = try? coldStates?(features.id(of: row)) else {
                    l.unreadable += 1
                    return
                }
                l.items[row] = stored
                l.cold[row] = nil
                l.coldRows[row] = nil  // its row is published from the state it learns into
            }
            if l.items[row] == nil { l.items[row] = startingItem(row, features: features) }
            if hotItems != .max {
                l.clock += 1
                l.lastLearned[row] = l.clock
            }
            if l.shared != nil {
                let id = features.id(of: row), dimension = ridge.parameterCount
                if l.shared!.start[row] == nil { l.shared!.start[row] = l.items[row]! }
                let node = l.shared!.node, ridge = self.ridge
                var item = l.items.removeValue(forKey: row)!
                l.shared!.ledger.withOwnStatistics(node: node, item: id, dimension: dimension) { sums in
                    _ = ridge.learn(&item.ridge, adding: &sums, userWeights: w, label: label)
                }
                l.items[row] = item
                l.shared!.unexchanged.insert(id)
                l.shared!.learnedSinceFold.insert(row)
                l.shared!.learnings[row, default: 0] &+= 1
            } else {
                guard seq > l.items[row]!.seq else { return }
                ridge.learn(&l.items[row]!.ridge, userWeights: w, label: label)
                l.items[row]!.seq = seq
                l.changed.insert(row)  // a cluster node's snapshots save no item state
                l.learnedSinceCut?.append(row)
            }
            l.items[row]!.observations += 1
            l.unpublished.insert(row)
        }
    }

    /// An item without state as it starts: its served row as a prior of precision ``lambda``.
    func startingItem(_ row: Int, features: ServingFeatures) -> Item {
        let ridge = self.ridge, lambda = self.lambda
        let start = features.withFeatures(item: row) { f, offset in ridge.prior(features: f, offset: offset, lambda: lambda) }
        return Item(ridge: start, observations: 0, seq: 0)
    }

    /// Calls `body` with row `row`'s live features and offset: its online state's solution, or
    /// the served row for an item without one. O(d) plus `body`, which runs outside the lock.
    func withRow<R>(_ row: Int, features: ServingFeatures, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: features.stride) { buffer in
            let f = buffer.baseAddress!
            let offset: Float? = live.withLock { l in
                f.update(repeating: 0, count: features.stride)
                if let item = l.items[row] { return item.row(ridge, into: f) }
                guard let cold = l.coldRows[row] else { return nil }
                f.update(from: cold.features, count: cold.features.count)
                return cold.offset
            }
            guard let offset else { return try features.withFeatures(item: row, body) }
            return try body(f, offset)
        }
    }

    /// Whether row `row`'s item state is held. O(1).
    func isHot(row: Int) -> Bool { live.withLock { $0.items[row] != nil } }

    /// The observations row `row`'s item has learned online (0 without state). O(1).
    func observations(row: Int) -> Int {
        live.withLock { $0.items[row]?.observations ?? $0.cold[row] ?? 0 }
    }

    /// The items changed since the last take as of one moment (a snapshot's cut): the changed
    /// rows and the states, shared with the live ones (copy-on-write), so taking it is O(1)
    /// under the learning lock and listing it O(changed) outside.
    struct ChangedAtCut: Sendable {
        fileprivate var changed: Set<Int> = []
        fileprivate var states: [Int: Item] = [:]

        /// The changed items with their states at the cut. O(changed).
        var items: [(row: Int, item: Item)] { changed.map { ($0, states[$0]!) } }
    }

    /// Takes the items changed since the last take, as of now, to be listed later
    /// (``ChangedAtCut``): for a snapshot's cut, under the learning lock. ``markChanged(_:)``
    /// puts them back when saving them failed. O(1).
    func takeChangedAtCut() -> ChangedAtCut {
        live.withLock { l in
            defer { (l.changed, l.learnedSinceCut) = ([], []) }
            return ChangedAtCut(changed: l.changed, states: l.items)
        }
    }

    /// The rows learned since the cut (``takeChangedAtCut()``) and the last call, some maybe
    /// named twice or not taken by the cut: each that the cut took holds a second copy of its
    /// state until its cut one is written, so a snapshot writes them first. O(rows).
    func takeLearnedSinceCut() -> [Int] {
        live.withLock { l in
            defer { if l.learnedSinceCut != nil { l.learnedSinceCut = [] } }
            return l.learnedSinceCut ?? []
        }
    }

    /// Stops recording the rows learned since a cut (``takeLearnedSinceCut()``). O(1).
    func endCut() {
        live.withLock { $0.learnedSinceCut = nil }
    }

    /// Marks rows changed again (after a snapshot of them failed to save).
    func markChanged(_ rows: some Sequence<Int>) {
        live.withLock { $0.changed.formUnion(rows) }
    }

    /// Takes the rows changed since the last publication with their current rows (padded to
    /// `stride`) and offsets. O(changed · d).
    func takeUnpublished(stride: Int) -> [(row: Int, features: [Float], offset: Float)] {
        live.withLock { l in
            var out = l.unpublished.map { row -> (row: Int, features: [Float], offset: Float) in
                var f = [Float](repeating: 0, count: stride)
                let offset = f.withUnsafeMutableBufferPointer { l.items[row]!.row(ridge, into: $0.baseAddress!) }
                return (row, f, offset)
            }
            for (row, cold) in l.coldRows {
                out.append((row, cold.features + [Float](repeating: 0, count: stride - cold.features.count), cold.offset))
            }
            l.unpublished.removeAll(keepingCapacity: true)
            l.coldRows = [:]
            return out.sorted { $0.row < $1.row }
        }
    }
}
