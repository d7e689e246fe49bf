import Logging
import OspreyStorage
import ServiceLifecycle
import Synchronization

/// Snapshots of the user weights (docs/architecture.md, "Storage semantics"): changed users
/// saved in chunks, each row with the log sequence it reflects, so a restart replays only the
/// log after them.
///
/// As a `Service` it snapshots once ``Manager/Configuration/snapshotObservations`` observations
/// have been learned since the last snapshot (replay of the log is cheap, about a microsecond
/// per observation, so snapshots bound restart time; durability is the log's), and once more on
/// graceful shutdown, after the ingestor has answered every queued observation.
public final class Snapshotter: Service, Sendable {
    private let stores: Stores
    private let registry: ModelRegistry
    private let progress: LearningProgress
    private let configuration: Manager.Configuration
    private let logger: Logger
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
                    // A state left out for its catch-up, and nothing else to save: tried again at
                    // the next check, with nothing learned to hand back.
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

    /// ``snapshot()``, also telling whether a state was left out for its catch-up (taken at the
    /// next check). A snapshot that saved nothing because of that is not counted as made.
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
        var saved = 0, deferred = false
        do {
            for model in registry.all { saved += try snapshot(model, deferred: &deferred) }
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
    /// A state that learns items and is still finishing its catch-up is left out, and `deferred`
    /// set (see ``snapshotAtOneCut(_:items:of:)``).
    private func snapshot(_ model: ServedModel, deferred: inout Bool) throws -> Int {
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
                if state.users.recent.from != nil {
                    deferred = true
                    continue
                }
                guard let users = try snapshotAtOneCut(state, items: items, of: model) else { continue }
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

    /// Moves the entries of `list` named in `learned` (by `key`; some maybe named twice, written
    /// or moved already) to its end, just below the `moved` entries moved there before and not
    /// yet written, keeping `positions` (each entry's index; written entries' are past the end).
    /// Returns how many entries at the end are moved ones now. O(learned).
    private static func moveToEnd<Entry, Key: Hashable>(_ learned: [Key], of list: inout [Entry], key: KeyPath<Entry, Key>,
                                                        positions: inout [Key: Int], moved: Int) -> Int {
        var moved = min(moved, list.count)
        for k in learned {
            let end = list.count - 1 - moved
            guard let i = positions[k], i <= end else { continue }  // written, or moved already
            if i < end {
                list.swapAt(i, end)
                (positions[list[i][keyPath: key]], positions[list[end][keyPath: key]]) = (i, end)
            }
            moved += 1
        }
        return moved
    }

    /// Whether `state` still learns live in `model` (it serves, or competes as the challenger). O(1).
    private static func learns(_ state: ServingState, in model: ServedModel) -> Bool {
        model.current === state || model.competition?.challenger === state
    }

    private func logSwappedOut(_ state: ServingState, of model: ServedModel, saved: Int, of changed: Int) {
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

    /// With item updates, a state's users and items are saved as of one cut: a user's update
    /// reads its item's row and an item's update reads its user's weights, so a restart replays
    /// exactly only from states that all reflect the same sequence. Under the learning lock the
    /// cut takes the sequence learned, the changed users and items and the items users observed,
    /// in O(stripes): their collections are shared, not read (``UserWeightStore/ChangedAtCut``;
    /// a state shares its storage until it is next learned, then is copied). The rows are then
    /// written in chunks: the users and items learned since the cut first (each holds two copies
    /// in memory until written: ``UserWeightStore/takeLearnedSinceCut()``,
    /// ``ItemLearner/takeLearnedSinceCut()``), then the other items, then the other users, each
    /// chunk keeping the rows it overwrites
    /// (``SnapshotStore/saveSnapshot(model:version:rows:observedItems:keepingPrevious:)``),
    /// until the snapshot's sequence advances and drops them. A snapshot cut short is put back
    /// at the next start (``SnapshotStore/restoreInterruptedSnapshot(model:version:)``).
    /// `snapshotWrites` is held throughout, so an erasure waits for the whole snapshot.
    /// Returns the users saved; nil when the state stopped learning meanwhile (swapped out): the
    /// snapshot lets it go at its next chunk, and the version's kept copies are put back when it
    /// is next loaded. O(changed users · d² + changed items · d²).
    private func snapshotAtOneCut(_ state: ServingState, items: ItemLearner, of model: ServedModel) throws -> Int? {
        let version = state.version.number
        return try progress.snapshotWrites.withLock { _ -> Int? in
            let clock = ContinuousClock(), locked = clock.now
            // Under the learning lock only the cut is taken, O(stripes); the states it shares are
            // listed after it, and the cut dropped at once (until then, a state learned is copied).
            let cut: Int64, unlearned: Int64?, paused: Duration
            var users: [(uid: String, state: UserWeightStore.Captured)], changedItems: [(row: Int, item: ItemLearner.Item)]
            var observed: [ObservedItem]
            do {
                let (seq, earliest, usersCut, itemsCut, observedCut) = progress.applied.withLock { seq in
                    (seq, state.users.earliestUnlearned, state.users.takeChangedAtCut(states: true), items.takeChangedAtCut(),
                     state.observed.takeAllAtCut())
                }
                (cut, unlearned, paused) = (seq, earliest, clock.now - locked)
                (users, changedItems, observed) = (usersCut.captured(), itemsCut.items, observedCut.items)
            }
            defer {
                state.users.endCut()
                items.endCut()
            }
            logger.info("snapshot cut", metadata: [
                "model.name": "\(model.name)", "model.version": "\(version)", "users": "\(users.count)",
                "items": "\(changedItems.count)", "learning.paused": "\(paused)",
            ])
            let features = state.features, saved = users.count, itemRows = changedItems.map(\.row)
            do {
                do {
                    try stores.snapshots.saveObservedItems(model: model.name, observed)
                    state.observed.finishSaving(observed)
                } catch {
                    state.observed.putBack(observed)
                    throw error
                }
                observed = []
                // Each chunk's states are let go once written (from the end, and no slice outlives
                // its statement, so nothing is copied): a user or an item learned since the cut
                // holds a second copy of its state until then. So those go first, as learning
                // names them (moved to the end); then the items, since a catalogue is small beside
                // its users and nearly every item of it learns while they are written; then the rest.
                var userPosition = Dictionary(users.enumerated().map { ($1.uid, $0) }, uniquingKeysWith: { a, _ in a })
                var itemPosition = Dictionary(changedItems.enumerated().map { ($1.row, $0) }, uniquingKeysWith: { a, _ in a })
                var learnedUsers = 0, learnedItems = 0, chunks = 0
                while !users.isEmpty || !changedItems.isEmpty {
                    guard Self.learns(state, in: model) else {
                        logSwappedOut(state, of: model, saved: saved - users.count, of: saved)
                        return nil
                    }
                    if chunks % Self.learnedFirstEvery == 0 {
                        learnedUsers = Self.moveToEnd(state.users.takeLearnedSinceCut(), of: &users, key: \.uid,
                                                      positions: &userPosition, moved: learnedUsers)
                        learnedItems = Self.moveToEnd(items.takeLearnedSinceCut(), of: &changedItems, key: \.row,
                                                      positions: &itemPosition, moved: learnedItems)
                    }
                    chunks += 1
                    if learnedUsers > 0 || changedItems.isEmpty {
                        let start = users.count - min(Self.snapshotChunk, users.count)
                        let rows = users[start...].map { SnapshotRow(uid: $0.uid, weights: $0.state.weights, seq: cut) }
                        try stores.snapshots.saveSnapshot(model: model.name, version: version, rows: rows, observedItems: [],
                                                          keepingPrevious: true)
                        state.users.finishSnapshot(rows.map(\.uid))
                        users.removeLast(users.count - start)
                        learnedUsers = max(0, learnedUsers - rows.count)
                    } else {
                        let start = changedItems.count - min(Self.snapshotChunk, changedItems.count)
                        let rows = changedItems[start...].map {
                            ItemStateRow(item: features.id(of: $0.row), ridge: $0.item.ridge, observations: $0.item.observations, seq: cut)
                        }
                        try stores.snapshots.saveItemStates(model: model.name, version: version, rows: rows, keepingPrevious: true)
                        changedItems.removeLast(changedItems.count - start)
                        learnedItems = max(0, learnedItems - rows.count)
                    }
                }
                try stores.snapshots.advanceSnapshot(model: model.name, version: version, to: min(cut, (unlearned ?? .max) - 1))
                // The states just written are the store's now: beyond the hot items, they go cold.
                let wentCold = items.evictClean()
                if model.current === state { model.metrics.record(items: items) }
                if wentCold > 0 {
                    let (hot, cold) = items.counts
                    logger.debug("items went cold", metadata: [
                        "model.name": "\(model.name)", "model.version": "\(version)", "items": "\(wentCold)",
                        "items.hot": "\(hot)", "items.cold": "\(cold)",
                    ])
                }
            } catch {
                state.users.markChanged(users.map(\.uid))
                items.markChanged(itemRows)
                throw error
            }
            return saved
        }
    }

    /// ``snapshot()`` on a background thread of its own (``BackgroundThread``: below the
    /// threads that answer requests), off the Swift concurrency pool that serves them.
    @discardableResult
    public func snapshotInBackground() async throws -> Int {
        try await BackgroundThread.run(name: "osprey-snapshot") { try self.snapshot() }
    }
}
