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
/// one array in log order, each user's entries linked from the first to the last: 40 bytes an
/// observation by its layout (plus the array's spare capacity) and about 32 a user, with no
/// allocation per user. (With whole observations in an array per user, a catch-up's replay of
/// 95k observations grew malloc's in-use bytes by 33 MB, 448 hot users' states included.)
public final class RecentObservations: Sendable {
    /// What a rebuild learns from one observation of a user.
    struct Recorded: Equatable {
        let seq: Int64
        let item: String
        let label: Float
        let time: Double
    }

    /// A ``Recorded`` and the user's next entry (-1: none yet), laid out in 40 bytes.
    private struct Entry {
        let seq: Int64
        var item: String
        var time: Double
        var label: Float
        var next: Int32 = -1

        var recorded: Recorded { Recorded(seq: seq, item: item, label: label, time: time) }
    }

    private struct Window {
        /// The first sequence recorded: every observation the state learned from it on is here.
        var from: Int64
        var entries: [Entry] = []
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

    /// Records an observation the state learns now (in log order); nothing when closed. O(1)
    /// amortized.
    func record(_ logged: LoggedObservation) {
        guard isOpen.load(ordering: .acquiring) else { return }
        window.withLock { w in
            guard w != nil, logged.seq >= w!.from else { return }
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
                if range.contains(e.seq) { out.append(e.recorded) }
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
