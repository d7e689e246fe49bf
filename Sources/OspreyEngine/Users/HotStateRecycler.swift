import OspreyMath
import Synchronization

/// The packed states of a replaced version's hot users, kept while a new version is installed so
/// that the users carried over into it are packed into their memory (docs/architecture.md,
/// "Install"). One per model, shared by the stores of all its states.
///
/// Freed and allocated anew, the states did not pass from the one version to the other: carried
/// after the old states were freed, the carry still grew the resident size by about the hot
/// tier until a trim (with glibc held to two arenas too); trimmed first, the resident size fell by
/// the hot tier and grew back over the carry. Recycled, the carry allocates no packed state.
///
/// A store deposits its hot users' states when it is freed (``UserWeightStore``'s `deinit`), so
/// only states no one else can read are kept, and only while an install is under way (from
/// ``open()`` to ``close()``), so nothing is kept that no one will take.
final class HotStateRecycler: Sendable {
    private struct Kept {
        var installs = 0
        var states: [PackedRidgeState] = []
    }
    private let kept = Mutex(Kept())
    /// `states.count`, read without the lock by every promotion.
    private let available = Atomic<Int>(0)
    /// States packed into in place since the first install under way began.
    private let reused = Atomic<Int>(0)

    init() {}

    /// Begins an install: states deposited from now until the matching ``close()`` are kept. O(1).
    func open() { kept.withLock { $0.installs += 1 } }

    /// Keeps the packed states among `hot` if an install is under way. O(states).
    func deposit(_ hot: some Sequence<UserWeightStore.Hot>) {
        kept.withLock { k in
            guard k.installs > 0 else { return }
            for h in hot {
                if case .packed(let p) = h.ridge { k.states.append(p) }
            }
            available.store(k.states.count, ordering: .relaxed)
        }
    }

    /// A kept state to pack a user of `dimension` into, or nil. O(1), without a lock when none is
    /// kept.
    func take(dimension: Int) -> PackedRidgeState? {
        guard available.load(ordering: .relaxed) > 0 else { return nil }
        return kept.withLock { k -> PackedRidgeState? in
            guard let p = k.states.popLast() else { return nil }
            available.store(k.states.count, ordering: .relaxed)
            return p.dimension == dimension ? p : nil
        }
    }

    /// Counts a state taken and packed into without a copy (``UserWeightStore/makeHot(_:referenced:)``). O(1).
    func countReuse() { reused.add(1, ordering: .relaxed) }

    /// The states kept now. O(1).
    var count: Int { available.load(ordering: .relaxed) }

    /// Ends an install. When no other is under way, frees the states no one took and returns
    /// how many states were reused since the first install began and how many are freed now
    /// (nil while another is under way). O(states).
    @discardableResult
    func close() -> (reused: Int, freed: Int)? {
        let left = kept.withLock { k -> [PackedRidgeState]? in
            precondition(k.installs > 0, "a recycler closed more often than opened")
            k.installs -= 1
            guard k.installs == 0 else { return nil }
            defer { k.states = []; available.store(0, ordering: .relaxed) }
            return k.states
        }
        guard let left else { return nil }
        return (reused.exchange(0, ordering: .relaxed), left.count)
    }
}
