import Logging
import OspreyStorage
import ServiceLifecycle
import Synchronization

/// Snapshots of the user weights (docs/architecture.md, "Storage semantics"): changed users
/// saved in chunks, each row with the log sequence it reflects, so a restart replays only the
/// log after them. A state that learns items is saved at one cut (Snapshotter+OneCut.swift).
///
/// As a `Service` it snapshots once ``Manager/Configuration/snapshotObservations`` observations
/// have been learned since the last snapshot (replay of the log is cheap, about a microsecond
/// per observation, so snapshots bound restart time; durability is the log's), and once more on
/// graceful shutdown, after the ingestor has answered every queued observation.
public final class Snapshotter: Service, Sendable {
    let stores: Stores
    private let registry: ModelRegistry
    let progress: LearningProgress
    private let configuration: Manager.Configuration
    let logger: Logger
    /// Observations learned when the last successful snapshot started.
    private let base = Atomic<Int>(0)
    /// Snapshots made and failed, users saved, time spent, snapshots under way.
    private let metrics: SnapshotMetrics

    init(stores: Stores, registry: ModelRegistry, progress: LearningProgress, configuration: Manager.Configuration,
         metrics: SnapshotMetrics, logger: Logger) {
        self.stores = stores
        self.metrics = metrics
        self.registry = registry
        self.progress = progress
        self.configuration = configuration
        self.logger = logger
    }

    /// The wait before retrying a failed snapshot; it doubles with each failure in a row, up to
    /// ``maxRetryDelay``.
    static let firstRetryDelay: Duration = .seconds(1), maxRetryDelay: Duration = .seconds(60)

    /// Snapshots whenever enough observations have been learned; after a failure, again after a
    /// backoff (``firstRetryDelay``, doubling), whatever has been learned since; on graceful
    /// shutdown, once more.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            let clock = ContinuousClock()
            var retry: (at: ContinuousClock.Instant, delay: Duration)?
            while !Task.isCancelled {
                try? await Task.sleep(for: self.configuration.snapshotCheckInterval)
                if Task.isCancelled { break }
                if let retry {
                    guard clock.now >= retry.at else { continue }
                } else {
                    let pending = self.progress.learned.load(ordering: .relaxed) - self.base.load(ordering: .relaxed)
                    guard pending >= self.configuration.snapshotObservations else { continue }
                }
                do {
                    let start = clock.now
                    let (saved, deferred) = try await BackgroundThread.run(name: "osprey-snapshot") { try self.snapshotDeferring() }
                    retry = nil
                    // A state left out (for its catch-up, or an install), and nothing else to
                    // save: tried again at the next check, with nothing learned to hand back.
                    if deferred && saved == 0 { continue }
                    let took = clock.now - start
                    // glibc keeps freed memory inside its arenas: without this, resident memory
                    // crept up ~0.4 MB/s between version changes (docs/operations.md, "Durability").
                    let (trim, returned) = ProcessMemory.returnFreedMeasured()
                    self.logger.info("snapshot saved", metadata: [
                        "users": "\(saved)", "duration": "\(took)", "memory.returned.bytes": "\(returned.map(String.init) ?? "-")",
                        "memory.returned.in": "\(trim)",
                    ])
                } catch {
                    let delay = retry.map { min($0.delay * 2, Self.maxRetryDelay) } ?? Self.firstRetryDelay
                    retry = (clock.now + delay, delay)
                    self.logger.error("snapshot failed; retrying", metadata: ["error": "\(error)", "retry.after": "\(delay)"])
                }
            }
        }
        let saved = try await snapshotInBackground()
        logger.info("snapshot saved on shutdown", metadata: ["users": "\(saved)"])
    }

    /// Users written per snapshot transaction (about 110 KB at d = 50), each committed and synced
    /// on its own. Small, because the log's commits sync the same disk: a sync waits for what
    /// other writes queued before it, and durable observe's p99 with a snapshot always under way
    /// fell from 20.2–22.2 ms (200 users, SQLite's default checkpoint of 1,000 pages) to
    /// 3.8–4.7 ms (10 users, ``SQLiteSnapshotStore/checkpointPages``; `bench/snapshot-load.sh`,
    /// BENCHMARKS.md). The
    /// learning lock is held while one chunk's states are captured (O(1) each), never for the
    /// whole snapshot.
    public static let snapshotChunk = 10

    /// A snapshot at one cut takes the users and items learned since the cut (each then holds
    /// two copies of its state) and writes them first, every this many chunks.
    static let learnedFirstEvery = 10

    /// Saves every user changed since the last snapshot; once saved, they may leave the hot tier.
    /// Each chunk of users is captured under the learning lock with the sequence learned so
    /// far, so every row is exact for its own sequence, and no copy of all the changed state is
    /// ever held. Returns the number of users
    /// saved. O(changed users · d²). Runs on the caller's thread; it blocks on SQLite.
    @discardableResult
    public func snapshot() throws -> Int { try snapshotDeferring().saved }

    /// ``snapshot()``, also telling whether a state was left out, for its catch-up or an install
    /// (taken at the next check). A snapshot that saved nothing because of that is not counted
    /// as made.
    private func snapshotDeferring() throws -> (saved: Int, deferred: Bool) {
        metrics.inProgress.increment()
        let start = ContinuousClock.now
        defer {
            metrics.seconds.increment(by: Double((ContinuousClock.now - start) / .nanoseconds(1)) * 1e-9)
            metrics.inProgress.decrement()
        }
        // Counted from here once this snapshot succeeds; a failed one leaves the base, so its
        // observations still count towards the next.
        let learned = progress.learned.load(ordering: .relaxed)
        // An install postpones at most one snapshot: once twice the interval is pending, the
        // snapshot runs beside it, so installs never leave restarts more than that to replay.
        let yielding = learned - base.load(ordering: .relaxed) < 2 * configuration.snapshotObservations
        var saved = 0, deferred = false
        do {
            for model in registry.all { saved += try snapshot(model, yieldingToInstalls: yielding, deferred: &deferred) }
        } catch {
            metrics.failures.increment()
            throw error
        }
        // A state left out for now is snapshotted at the next check.
        if !deferred { base.store(learned, ordering: .relaxed) }
        if !deferred || saved > 0 {
            metrics.completed.increment()
            metrics.users.increment(by: saved)
        }
        return (saved, deferred)
    }

    /// Saves the changed users of the model's serving state and of a challenger's, and the items
    /// users observed. Each state is cut under the learning lock: the sequence learned so far (the
    /// snapshot's floor; held below an observation a failed rebuild left unlearned), the users
    /// changed until then, and the items observed until then, recorded first. Each chunk's rows
    /// carry the items their users observed since, so whatever a row reflects is recorded too.
    /// Returns the users saved. A state swapped out meanwhile is let go, no more of it saved; the
    /// install that replaced it hands its memory back once it is freed.
    /// A state that learns items is left out, and `deferred` set, while it finishes its catch-up,
    /// and, `yieldingToInstalls`, while a version is being installed in its place
    /// (``ServedModel/replacing(when:_:)``; see ``snapshotAtOneCut(_:items:of:yieldingToInstalls:deferred:)``).
    private func snapshot(_ model: ServedModel, yieldingToInstalls: Bool, deferred: inout Bool) throws -> Int {
        var saved = 0
        // Held weakly between states, and each state's snapshot stops at its next chunk once the
        // state no longer learns (swapped out, or a challenger dropped), so a snapshot never keeps
        // a replaced state, at scale a gigabyte of user states, alive beside the new one. What it
        // wrote of that version is exact for each row's own sequence, like a snapshot cut short.
        for held in model.learningStates.map({ WeakReference(object: $0) }) {
            guard let state = held.object else { continue }
            // A cluster node's items are the version's states plus the sums every node publishes
            // (``ItemExchange``): only its users are saved, as with item updates off.
            if let items = state.itemLearner, !items.isShared {
                // Users the catch-up demoted are rebuilt from their rows and what it recorded of
                // them, in memory: their rows are not of the cut until they are hot again.
                // A version being installed in its place: the swap usually lets it go unfinished.
                if state.users.recent.from != nil || (yieldingToInstalls && model.current === state && model.isBeingReplaced) {
                    deferred = true
                    continue
                }
                guard let users = try snapshotAtOneCut(state, items: items, of: model, yieldingToInstalls: yieldingToInstalls,
                                                       deferred: &deferred) else { continue }
                saved += users
                saveHotUsers(of: state, model: model)
                continue
            }
            let version = state.version.number
            // Each capture and its write under `snapshotWrites`: an erasure waits for the write,
            // so nothing captured before it is written after it (docs/operations.md, "Erasing a user").
            let (learned, unlearned, changed) = try progress.snapshotWrites.withLock { _ in
                let (learned, unlearned, changedCut, observedCut) = progress.applied.withLock { seq in
                    (seq, state.users.earliestUnlearned, state.users.takeChangedAtCut(states: false), state.observed.takeAllAtCut())
                }
                let changed = changedCut.uids, observed = observedCut.items
                do {
                    try stores.snapshots.saveObservedItems(model: model.name, observed)
                    state.observed.finishSaving(observed)
                } catch {
                    state.observed.putBack(observed)
                    state.users.markChanged(changed)
                    throw error
                }
                return (learned, unlearned, changed)
            }
            let floor = min(learned, (unlearned ?? .max) - 1)
            if let unlearned {
                logger.warning("snapshot held back: a user whose state lags the log (a failed rebuild, or a new version's catch-up not yet carried over) is replayed from it at the next start", metadata: [
                    "model.name": "\(model.name)", "model.version": "\(version)", "observation.seq": "\(unlearned)",
                ])
            }
            var start = 0
            do {
                while start < changed.count {
                    guard Self.learns(state, in: model) else { break }
                    let chunk = changed[start..<min(start + Self.snapshotChunk, changed.count)]
                    try progress.snapshotWrites.withLock { _ in
                        // Captured under the learning lock in O(1) per user (a changed user stays
                        // hot until this save finishes), unpacked and serialized after it.
                        // A cluster node saves only the users it serves: the others' rows are their
                        // owners', and a row's sequence must be what its state has learned.
                        let cluster = registry.cluster
                        let (captured, items, seq) = progress.applied.withLock { seq in
                            (chunk.compactMap { uid in
                                cluster?.owns(uid) == false ? nil : state.users.captureHot(uid).map { (uid, $0, state.users.adoptedThrough(uid)) }
                             },
                             state.observed.take(chunk), seq)
                        }
                        // An adopted user reflects the log as far as its adoption read it, maybe
                        // further than this node has learned.
                        let rows = captured.map { SnapshotRow(uid: $0.0, weights: $0.1.weights, seq: max(seq, $0.2 ?? seq)) }
                        do {
                            try stores.snapshots.saveSnapshot(model: model.name, version: version, rows: rows, observedItems: items)
                            state.observed.finishSaving(items)
                        } catch {
                            state.observed.putBack(items)
                            throw error
                        }
                        state.users.finishSnapshot(chunk)
                    }
                    start += chunk.count
                }
                if start < changed.count {
                    logSwappedOut(state, of: model, saved: start, of: changed.count)
                    saved += start
                    continue
                }
                // A cluster node knows only its own users' rows: the version's sequence (which
                // every stored user must reflect) stays where it is; adoptions replay each user
                // from its own row.
                if registry.cluster == nil {
                    try stores.snapshots.advanceSnapshot(model: model.name, version: version, to: floor)
                }
            } catch {
                state.users.markChanged(changed[start...])
                throw error
            }
            saved += changed.count
            saveHotUsers(of: state, model: model)
        }
        return saved
    }

    /// Whether `state` still learns live in `model` (it serves, or competes as the challenger). O(1).
    static func learns(_ state: ServingState, in model: ServedModel) -> Bool {
        model.current === state || model.competition?.challenger === state
    }

    func logSwappedOut(_ state: ServingState, of model: ServedModel, saved: Int, of changed: Int) {
        logger.info("snapshot let go of a version swapped out", metadata: [
            "model.name": "\(model.name)", "model.version": "\(state.version.number)",
            "users.saved": "\(saved)", "users.changed": "\(changed)",
        ])
    }

    /// For the next start's warm start: records who is hot now that the changed users are saved.
    /// A failure is logged; the snapshot stands.
    private func saveHotUsers(of state: ServingState, model: ServedModel) {
        guard state.users.isTiered else { return }
        let version = state.version.number
        do {
            try progress.snapshotWrites.withLock { _ in
                try stores.snapshots.saveHotUsers(model: model.name, version: version, state.users.hotUids())
            }
        } catch {
            logger.warning("could not record the hot users for the next warm start", metadata: [
                "model.name": "\(model.name)", "model.version": "\(version)", "error": "\(error)",
            ])
        }
    }

    /// ``snapshot()`` on a background thread of its own (``BackgroundThread``: below the
    /// threads that answer requests), off the Swift concurrency pool that serves them.
    @discardableResult
    public func snapshotInBackground() async throws -> Int {
        try await BackgroundThread.run(name: "osprey-snapshot") { try self.snapshot() }
    }
}
