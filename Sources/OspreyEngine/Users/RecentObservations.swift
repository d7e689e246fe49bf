import OspreyModel
import Synchronization

/// The observations a state has learned since a sequence, by user, kept in memory while that
/// state catches up with the log before it serves (docs/architecture.md, "Versions"). A user the
/// catch-up let go of lags its own learning (``UserWeightStore/demote(toAtMost:replayFrom:)``):
/// its rebuild is its snapshot row plus its observations since, read here instead of from the
/// log, which holds no index by user. A cache of the log only: when it is closed, or does not
/// reach back far enough, a rebuild reads the log. About 100 bytes an observation.
public final class RecentObservations: Sendable {
    private struct Window {
        /// The first sequence recorded: every observation the state learned from it on is here.
        var from: Int64
        var byUser: [String: [LoggedObservation]] = [:]
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

    /// Records an observation the state learns now (in log order); nothing when closed. O(1).
    func record(_ logged: LoggedObservation) {
        guard isOpen.load(ordering: .acquiring) else { return }
        window.withLock { w in
            guard w != nil, logged.seq >= w!.from else { return }
            w!.byUser[logged.observation.uid, default: []].append(logged)
            w!.count += 1
        }
    }

    /// User `uid`'s observations with sequence in `range`, in log order, or nil when the window
    /// is closed or starts after the range does (the log has them). O(the user's observations).
    func observations(of uid: String, in range: Range<Int64>) -> [LoggedObservation]? {
        guard isOpen.load(ordering: .acquiring) else { return nil }
        return window.withLock { w -> [LoggedObservation]? in
            guard let w, w.from <= range.lowerBound else { return nil }
            return (w.byUser[uid] ?? []).filter { range.contains($0.seq) }
        }
    }

    /// The first sequence recorded, or nil when closed. O(1).
    var from: Int64? { window.withLock { $0?.from } }

    /// The observations recorded (0 when closed). O(1).
    var count: Int { window.withLock { $0?.count ?? 0 } }

    /// Drops what was recorded of user `uid` (its erasure). O(1).
    func forget(_ uid: String) {
        guard isOpen.load(ordering: .acquiring) else { return }
        window.withLock { w in
            if let gone = w?.byUser.removeValue(forKey: uid) { w!.count -= gone.count }
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
