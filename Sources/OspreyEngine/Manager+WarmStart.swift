import Synchronization

/// Warm start: after a start every user is cold, and each user's first observation rebuilds its
/// full state inside the learning step, where every commit behind it waits (BENCHMARKS.md: the
/// first seconds after a start). So the users who were active before the start are made hot
/// again in the background, below the request threads, most recently saved first.
extension Manager {
    /// Makes hot, for every model, the users its restore named (``UserWeightStore/takeWarmStart()``:
    /// those who have learned observations, most recently saved first, at most ``Configuration/hotUsers``),
    /// without evicting anyone; stops early when `stop` returns true or a model's serving state
    /// was replaced. Returns the users made hot. O(users named) rebuilds. Runs on the caller's
    /// thread; it blocks on SQLite.
    @discardableResult
    public func warmStart(stop: () -> Bool = { false }) -> Int {
        var warmed = 0
        for model in registry.all {
            let users = model.current.users
            let named = users.takeWarmStart()
            guard !named.isEmpty else { continue }
            let clock = ContinuousClock(), start = clock.now
            var made = 0
            for uid in named {
                // A retrain or rollback swapped in another state: its users are not these.
                if stop() || model.current.users !== users { break }
                if users.warm(uid) { made += 1 }
            }
            logger.info("warm start: users made hot", metadata: [
                "model.name": "\(model.name)", "users": "\(made)", "named": "\(named.count)", "duration": "\(clock.now - start)",
            ])
            warmed += made
        }
        return warmed
    }

    /// ``warmStart(stop:)`` on a thread of its own (``BackgroundThread``: below the request
    /// threads), stopped early when the calling task is cancelled.
    func warmStartInBackground() async -> Int {
        let stop = StopFlag()
        return await withTaskCancellationHandler {
            (try? await BackgroundThread.run(name: "osprey-warm-start") { self.warmStart(stop: stop.isSet) }) ?? 0
        } onCancel: {
            stop.set()
        }
    }
}

/// A flag one task sets and a thread polls.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    @Sendable func isSet() -> Bool { value.load(ordering: .relaxed) }
}
