import OspreyModel
import Synchronization

/// The observations a state has learned since a sequence, by user, kept in memory while that
/// state catches up with the log before it serves (docs/architecture.md, "Versions"). A user the
/// catch-up let go of lags its own learning (``UserWeightStore/demote(toAtMost:)``): its rebuild
/// is its snapshot row plus its observations since, read here instead of from the log, which
/// holds no index by user. A cache of the log only: when it is closed, or does not reach back far
/// enough, a rebuild reads the log.
///
/// It keeps what learning reads of an observation (``Recorded``: sequence, item, label, time) in
/// one array in log order, each user's entries linked from the first to the last: 56 bytes an
/// observation by its layout (plus the array's spare capacity) and about 32 a user, with no
/// allocation per user. (With whole observations in an array per user, a catch-up's replay of
/// 95k observations grew malloc's in-use bytes by 33 MB, 448 hot users' states included.)
/// With item updates, what the user's update read of its item (``ItemInput``) is kept too, in one
/// array of floats: 4 · (stride + 1) bytes more an observation, 212 at d = 50.
public final class RecentObservations: Sendable {
    /// What a user's update read of its item when items learn online: the item's row (padded to
    /// the stride) and offset as the update used them, and the squared error scored before the
    /// item learned. The item's row moves on with every observation of it, so a demoted user's
    /// rebuild learns from these, and repeats its updates bit for bit, rather than from the row
    /// as it is by then (docs/architecture.md, "Versions").
    struct ItemInput: Equatable {
        let features: [Float]
        let offset: Float
        let scored: Double
    }

    /// What a rebuild learns from one observation of a user.
    struct Recorded: Equatable {
        let seq: Int64
        let item: String
        let label: Float
        let time: Double
        /// With item updates: what the update read of the item (nil: the update did not run, or
        /// items do not learn).
        var input: ItemInput? = nil
    }

    /// A ``Recorded`` and the user's next entry (-1: none yet), laid out in 56 bytes.
    private struct Entry {
        let seq: Int64
        var item: String
        var time: Double
        /// Where the item's row and offset start in ``Window/inputs`` (-1: no input).
        var input: Int = -1
        var scored: Double = 0
        var label: Float
        var next: Int32 = -1
    }

    private struct Window {
        /// The first sequence recorded: every observation the state learned from it on is here.
        var from: Int64
        var entries: [Entry] = []
        /// The entries' ``ItemInput``s: each row's `stride` floats, then its offset.
        var inputs: [Float] = []
        var stride: Int?
        /// Each user's first and last entry.
        var byUser: [String: (first: Int32, last: Int32)] = [:]
        /// The observations recorded of users not forgotten.
        var count = 0
    }

    private let window = Mutex<Window?>(nil)
    /// Whether the window is open: one atomic load on each learn while it is not.
    private let isOpen = Atomic<Bool>(false)

    public init() {}

    /// Starts recording from sequence `from` (the first one the state has not learned from its
    /// rows); already open, it keeps the window it has.
    func open(from: Int64) {
        window.withLock { w in
            guard w == nil else { return }
            w = Window(from: from)
            isOpen.store(true, ordering: .releasing)
        }
    }

    /// Records an observation the state learns now (in log order); nothing when closed. Returns
    /// its entry, for ``attach(features:offset:scored:to:)`` (nil: not recorded). O(1) amortized.
    @discardableResult
    func record(_ logged: LoggedObservation) -> Int32? {
        guard isOpen.load(ordering: .acquiring) else { return nil }
        return window.withLock { w -> Int32? in
            guard w != nil, logged.seq >= w!.from else { return nil }
            let o = logged.observation
            let index = Int32(w!.entries.count)
            w!.entries.append(Entry(seq: logged.seq, item: o.item, time: o.time, label: o.label))
            if let (first, last) = w!.byUser[o.uid] {
                w!.entries[Int(last)].next = index
                w!.byUser[o.uid] = (first, index)
            } else {
                w!.byUser[o.uid] = (index, index)
            }
            w!.count += 1
            return index
        }
    }

    /// Keeps what the update of entry `index` (``record(_:)``'s) read of its item (an
    /// ``ItemInput``), copied straight from the row the update read. O(stride) amortized.
    func attach(features: UnsafeBufferPointer<Float>, offset: Float, scored: Double, to index: Int32) {
        window.withLock { w in
            guard w != nil, Int(index) < w!.entries.count else { return }
            precondition(w!.stride.map { $0 == features.count } ?? true, "an item input of another stride")
            w!.stride = features.count
            w!.entries[Int(index)].input = w!.inputs.count
            w!.entries[Int(index)].scored = scored
            w!.inputs.append(contentsOf: features)
            w!.inputs.append(offset)
        }
    }

    /// User `uid`'s observations with sequence in `range`, in log order, or nil when the window
    /// is closed or starts after the range does (the log has them). O(the user's observations).
    func observations(of uid: String, in range: Range<Int64>) -> [Recorded]? {
        guard isOpen.load(ordering: .acquiring) else { return nil }
        return window.withLock { w -> [Recorded]? in
            guard let w, w.from <= range.lowerBound else { return nil }
            var out: [Recorded] = []
            var i = w.byUser[uid]?.first ?? -1
            while i >= 0 {
                let e = w.entries[Int(i)]
                if range.contains(e.seq) {
                    var r = Recorded(seq: e.seq, item: e.item, label: e.label, time: e.time)
                    if e.input >= 0, let stride = w.stride {
                        r.input = ItemInput(features: Array(w.inputs[e.input..<(e.input + stride)]),
                                            offset: w.inputs[e.input + stride], scored: e.scored)
                    }
                    out.append(r)
                }
                i = e.next
            }
            return out
        }
    }

    /// The first sequence recorded, or nil when closed. O(1).
    var from: Int64? { window.withLock { $0?.from } }

    /// The observations recorded (0 when closed). O(1).
    var count: Int { window.withLock { $0?.count ?? 0 } }

    /// Drops what was recorded of user `uid` (its erasure): its entries are blanked, not
    /// just unlinked. O(the user's observations).
    func forget(_ uid: String) {
        guard isOpen.load(ordering: .acquiring) else { return }
        window.withLock { w in
            guard let (first, _) = w?.byUser.removeValue(forKey: uid) else { return }
            var i = first
            while i >= 0 {
                let next = w!.entries[Int(i)].next
                (w!.entries[Int(i)].item, w!.entries[Int(i)].label, w!.entries[Int(i)].time) = ("", 0, 0)
                (w!.entries[Int(i)].input, w!.entries[Int(i)].scored) = (-1, 0)
                w!.count -= 1
                i = next
            }
        }
    }

    /// Stops recording and lets the observations go.
    func close() {
        window.withLock { w in
            isOpen.store(false, ordering: .releasing)
            w = nil
        }
    }
}
