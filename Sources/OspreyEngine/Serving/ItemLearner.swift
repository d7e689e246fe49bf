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
/// Memory: one ``RidgeState`` per item with state, about `(d+1)·stride·6` bytes (≈ 18 KB at
/// d = 50): every trained item from the start, a catalogue item from its first observation.
final class ItemLearner: Sendable {
    /// One item's online state.
    struct Item: Sendable {
        var ridge: RidgeState
        /// Observations learned online.
        var observations: Int
        /// The log sequence the state reflects: a replay skips the observations up to it.
        var seq: Int64
    }

    private struct Live {
        /// By serving row (``ServingFeatures``).
        var items: [Int: Item]
        /// Changed since the last snapshot's cut.
        var changed: Set<Int> = []
        /// Changed since the last publication.
        var unpublished: Set<Int> = []
    }

    /// The regression each item's row solves.
    let ridge: ItemRidge
    /// The precision of the prior of an item first learned from its computed vector (its
    /// attributes, or the mean item): the version's λ.
    let lambda: Float
    private let live: Mutex<Live>

    /// A learner with no item states yet (``restore(_:)`` gives them). O(1).
    init(ridge: ItemRidge, lambda: Float) {
        self.ridge = ridge
        self.lambda = lambda
        live = Mutex(Live(items: [:]))
    }

    /// Gives items their states, by serving row (from a snapshot, or as a version starts), to
    /// be published with the serving state. O(items).
    func restore(_ items: [Int: Item]) {
        live.withLock { l in
            l.items.merge(items) { _, new in new }
            l.unpublished.formUnion(items.keys)
        }
    }

    /// Learns observation `seq` with label `label`, by a user whose weights are `userWeights`,
    /// into row `row`'s item: an item without state starts from its served row (`features`) as
    /// a prior of precision ``lambda``. Skipped when the item's state already reflects `seq` (a
    /// replay over a snapshot). O(d²).
    func learn(row: Int, userWeights w: UnsafePointer<Float>, label: Float, seq: Int64, features: ServingFeatures) {
        live.withLock { l in
            if l.items[row] == nil {
                let ridge = self.ridge, lambda = self.lambda
                let start = features.withFeatures(item: row) { f, offset in ridge.prior(features: f, offset: offset, lambda: lambda) }
                l.items[row] = Item(ridge: start, observations: 0, seq: 0)
            }
            guard seq > l.items[row]!.seq else { return }
            ridge.learn(&l.items[row]!.ridge, userWeights: w, label: label)
            l.items[row]!.observations += 1
            l.items[row]!.seq = seq
            l.changed.insert(row)
            l.unpublished.insert(row)
        }
    }

    /// Calls `body` with row `row`'s live features and offset: its online state's solution, or
    /// the served row for an item without one. O(d) plus `body`, which runs outside the lock.
    func withRow<R>(_ row: Int, features: ServingFeatures, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: features.stride) { buffer in
            let f = buffer.baseAddress!
            let offset: Float? = live.withLock { l in
                guard let item = l.items[row] else { return nil }
                f.update(repeating: 0, count: features.stride)
                return ridge.row(of: item.ridge, into: f)
            }
            guard let offset else { return try features.withFeatures(item: row, body) }
            return try body(f, offset)
        }
    }

    /// The observations row `row`'s item has learned online (0 without state). O(1).
    func observations(row: Int) -> Int {
        live.withLock { $0.items[row]?.observations ?? 0 }
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
            defer { l.changed = [] }
            return ChangedAtCut(changed: l.changed, states: l.items)
        }
    }

    /// Marks rows changed again (after a snapshot of them failed to save).
    func markChanged(_ rows: some Sequence<Int>) {
        live.withLock { $0.changed.formUnion(rows) }
    }

    /// Takes the rows changed since the last publication with their current rows (padded to
    /// `stride`) and offsets. O(changed · d).
    func takeUnpublished(stride: Int) -> [(row: Int, features: [Float], offset: Float)] {
        live.withLock { l in
            let out = l.unpublished.sorted().map { row -> (Int, [Float], Float) in
                var f = [Float](repeating: 0, count: stride)
                let offset = f.withUnsafeMutableBufferPointer { ridge.row(of: l.items[row]!.ridge, into: $0.baseAddress!) }
                return (row, f, offset)
            }
            l.unpublished.removeAll(keepingCapacity: true)
            return out
        }
    }
}
