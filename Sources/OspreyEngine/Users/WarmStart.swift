import Dispatch
import Logging
import ServiceLifecycle
import Synchronization

/// Warm start: after a start every user is cold, and each user's first observation rebuilds its
/// full state inside the learning step, where every commit behind it waits (BENCHMARKS.md: the
/// first seconds after a start). So the users who were hot at the last snapshot before the start
/// (each snapshot records them; a graceful stop ends with one) are made hot again in the
/// background, below the request threads: the hot tier as it was.
///
/// As a `Service` it warms once after the start (when enabled) and stops early on graceful
/// shutdown; the users it did not reach stay named, so the final snapshot records them as hot.
public final class WarmStart: Service, Sendable {
    private let registry: ModelRegistry
    private let enabled: Bool
    private let logger: Logger

    init(registry: ModelRegistry, enabled: Bool, logger: Logger) {
        self.registry = registry
        self.enabled = enabled
        self.logger = logger
    }

    /// Warms the hot tier (if enabled), then waits for the graceful shutdown.
    public func run() async throws {
        if enabled { _ = await cancelWhenGracefulShutdown { await self.warm() } }
        try? await gracefulShutdown()
    }


    /// Threads a warm start reads with: reads from the disk (after a reboot) go several at a time.
    public static let threads = 4

    /// Makes hot, for every model, the users its restore named (``UserWeightStore/warmStartList``:
    /// those hot at its last snapshot, at most ``Manager/Configuration/hotUsers``), without evicting
    /// anyone, on `threads` threads of their own (``BackgroundThread``: below the request
    /// threads). Stops early when the calling task is cancelled or a model's serving state is
    /// replaced; the users not reached stay named, so the next snapshot records them as hot.
    /// Returns the users made hot. O(users named) rebuilds.
    @discardableResult
    public func warm(threads: Int = threads) async -> Int {
        precondition(threads >= 1, "a warm start needs a thread")
        let stop = StopFlag()
        return await withTaskCancellationHandler {
            var warmed = 0
            for model in registry.all {
                let users = model.current.users
                let named = users.warmStartList
                guard !named.isEmpty else { continue }
                let clock = ContinuousClock(), start = clock.now
                let cursor = Cursor()
                // A retrain or rollback swapped in another state: its users are not these.
                let made = await withCheckedContinuation { (done: CheckedContinuation<Int, Never>) in
                    DispatchQueue.global().async {
                        done.resume(returning: users.warm(named, threads: threads, cursor: cursor) {
                            !stop.isSet() && model.current.users === users
                        })
                    }
                }
                // Those not reached (stopped early) stay named, to be recorded as hot; none once done.
                users.setWarmStart(cursor.next(below: named.count).map { Array(named[$0...]) } ?? [])
                logger.info("warm start: users made hot", metadata: [
                    "model.name": "\(model.name)", "users": "\(made)", "named": "\(named.count)", "duration": "\(clock.now - start)",
                ])
                warmed += made
            }
            return warmed
        } onCancel: {
            stop.set()
        }
    }
}

/// A flag one task sets and threads poll.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    func isSet() -> Bool { value.load(ordering: .relaxed) }
}

/// Hands out 0, 1, 2, … to threads sharing a list.
final class Cursor: Sendable {
    private let value = Atomic<Int>(0)
    /// The next index, or nil once `count` are handed out. O(1).
    func next(below count: Int) -> Int? {
        let i = value.add(1, ordering: .relaxed).oldValue
        return i < count ? i : nil
    }
}
