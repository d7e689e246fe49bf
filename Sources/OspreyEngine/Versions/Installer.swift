import Dispatch
import Foundation
import Logging
import OspreyModel
import OspreyStorage

/// Changes what a model serves (TensorFlow Serving's *manager* swapping *servables*): installs a
/// loaded state as the serving version or as a competing challenger, rolls back, promotes and
/// ends competitions (Velox §4.2, §5). A state is swapped in whole under the learning lock, with
/// every observation logged meanwhile learned first, so readers never wait and no observation
/// is learned twice or skipped across a swap. The catalogue's record changes with the swap.
public final class Installer: Sendable {
    let stores: Stores
    private let loader: Loader
    private let registry: ModelRegistry
    private let progress: LearningProgress
    private let decisions: DecisionLog
    private let logger: Logger

    init(stores: Stores, loader: Loader, registry: ModelRegistry, progress: LearningProgress, decisions: DecisionLog,
         logger: Logger) {
        self.stores = stores
        self.loader = loader
        self.registry = registry
        self.progress = progress
        self.decisions = decisions
        self.logger = logger
    }

    /// Serves version `number` again (Velox §6): θ of that version with its own user weights, to
    /// which every observation logged since they were saved is applied, so nothing learned is
    /// dropped and the result equals a fresh server started on that version. Reads the stores
    /// and replays the log on a dispatch queue, off the Swift concurrency pool.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownVersion`, or `conflict` for the
    ///   challenger.
    public func rollback(model name: String, to number: Int) async throws {
        try await Self.offPool { try self.rollbackNow(model: name, to: number) }
    }

    /// ``rollback(model:to:)`` on the caller's thread. On a cluster node, the version is
    /// published to every node (``publish(_:of:replacing:)``).
    func rollbackNow(model name: String, to number: Int) throws {
        let model = try registry.model(name)
        if registry.cluster != nil {
            try requireVersion(number, of: name)
            try publish(number, of: model)
            logger.info("rolled back on every node", metadata: ["model.name": "\(name)", "model.version": "\(number)"])
            return
        }
        try model.replacing {
            try requireVersion(number, of: name)
            if model.competition?.challenger.version.number == number {
                throw OspreyError(.conflict, "version \(number) is competing as the challenger; promote it instead")
            }
            let through = progress.sequence
            let (state, replayed) = try loader.load(model: name, version: number, through: through, continuing: .init(model),
                                                    catchingUp: true)
            try install(state, in: model, caughtUpThrough: max(replayed, through))
        }
        logger.info("rolled back", metadata: ["model.name": "\(name)", "model.version": "\(number)"])
    }

    /// A cluster node's install (docs/operations.md, "Partitioned serving"): the version store's
    /// serving version is what every node serves. Records version `number` as serving (with
    /// `parent`, only in place of that version), announces it, and follows it here; the other
    /// nodes follow on the announcement, or at their next heartbeat if they missed it.
    /// - Throws: ``OspreyError`` `conflict` when `parent` no longer serves; what the stores throw.
    func publish(_ number: Int, of model: ServedModel, replacing parent: Int? = nil) throws {
        guard registry.cluster != nil else { preconditionFailure("only a cluster node publishes versions") }
        if let parent, let serving = try servingVersion(of: model.name), serving != parent {
            throw OspreyError(.conflict, "version \(serving) of `\(model.name)` was installed while the retrain from version \(parent) ran (a rollback, or another node's retrain); version \(number) is stored but not served: retrain again to train on what serves now")
        }
        try stores.versions.setServing(model: model.name, version: number)
        registry.announce("version \(number) serving", of: model.name, logger: logger)
        try follow(model)
    }

    /// On a cluster node, serves the version the version store says serves, if another does
    /// here: its state is loaded without users (they are adopted from its rows and the log on
    /// first use) and swapped in under the learning lock. Returns whether it swapped.
    /// O(the version's θ and catalogue).
    /// - Throws: what the stores throw; the serving state is unchanged then.
    @discardableResult
    func follow(_ model: ServedModel, serving: Int? = nil) throws -> Bool {
        guard let number = try serving ?? servingVersion(of: model.name), number != model.version.number else { return false }
        let (state, _) = try loader.load(model: model.name, version: number, continuing: .init(model))
        let replaced = progress.applied.withLock { _ in
            model.swap(to: state)
        }
        withExtendedLifetime(replaced) {}
        logger.info("version followed", metadata: [
            "model.name": "\(model.name)", "model.version": "\(number)", "model.version.replaced": "\(replaced.version.number)",
        ])
        return true
    }

    /// The version the version store says `model` serves (nil for a model it does not hold).
    private func servingVersion(of model: String) throws -> Int? {
        try stores.versions.models().first { $0.name == model }?.servingVersion
    }

    /// Swaps `state` in atomically. It has learned the log up to `seq`; the rest is learned in
    /// two steps — most of it without blocking anyone, the tail under the learning lock — so
    /// that no observation is learned twice or skipped, and the swap and the catalogue's record
    /// of the serving version happen together. Before the swap, the answers hottest in the
    /// serving state's cache are computed again from the new one (Velox §4.2), so the first
    /// requests after it are not all misses. Right after it the replaced state is freed and its
    /// memory handed back, all but its hot users' states, which the model's
    /// ``HotStateRecycler`` keeps; then the users hot in it are made hot in the new one
    /// (``carryHotSet(_:to:of:)``), packed into those states, so their next observations
    /// rebuild no one and the carry allocates no hot state. What the carry did not take is freed
    /// and handed back at the end (docs/architecture.md, "Install").
    /// With `parent`, it installs only in place of that version: a retrain's version does not
    /// undo a rollback or a promotion made while it trained.
    /// - Throws: ``OspreyError`` `conflict` when `parent` no longer serves; what the stores throw.
    func install(_ state: ServingState, in model: ServedModel, caughtUpThrough seq: Int64, replacing parent: Int? = nil) throws {
        // Open before the swap: whoever lets go of the replaced state last frees it.
        let recycler = state.users.recycler
        recycler.open()
        defer {
            if let closed = recycler.close(), closed.reused + closed.freed > 0 {
                if closed.freed > 0 { ProcessMemory.returnFreed() }
                logger.info("replaced hot states recycled", metadata: [
                    "model.name": "\(model.name)", "model.version": "\(state.version.number)",
                    "reused": "\(closed.reused)", "freed": "\(closed.freed)",
                ])
            }
        }
        let bound = loader.catchUpBound(for: state)
        if bound != nil { state.users.beginCatchUp(from: seq + 1) }
        var caught = try catchUp(state, after: seq, bounded: bound)
        let hot = state.users.hotUsers == .max ? [] : model.current.users.hotUids()
        let warmed = Self.repopulate(state, from: model.current)
        if warmed > 0 {
            logger.info("prediction cache repopulated", metadata: [
                "model.name": "\(model.name)", "model.version": "\(state.version.number)", "answers": "\(warmed)",
            ])
        }
        caught = try catchUp(state, after: caught, bounded: bound)
        let clock = ContinuousClock(), locked = clock.now
        var (replaced, tail) = try progress.applied.withLock { last -> (ServingState?, Int64) in
            if let parent, model.version.number != parent {
                throw OspreyError(.conflict, "version \(model.version.number) of `\(model.name)` was installed while the retrain from version \(parent) ran (a rollback or a promotion); version \(state.version.number) is stored but not served: retrain again to train on what serves now")
            }
            try state.replay(log: stores.log, after: caught, through: last)
            try stores.versions.setServing(model: model.name, version: state.version.number)
            return (model.swap(to: state), last - caught)
        }
        let unlocked = clock.now
        // The replaced state is freed here, off the learning lock, unless someone still holds it;
        // its memory is handed back, all but its hot states (kept by the recycler), before the
        // hot set is carried over into them.
        let gone = WeakReference(object: replaced)
        replaced = nil
        let freed = clock.now
        handBack(gone, of: model)
        // Every observation up to it is learned, and a user that lags has learned none since the swap.
        let through = progress.sequence
        carryHotSet(hot, to: state, of: model, laggingThrough: through)
        finishCatchUp(state, of: model, through: through)
        logger.info("version swapped in", metadata: [
            "model.name": "\(model.name)", "model.version": "\(state.version.number)",
            "tail": "\(tail)", "learning.paused": "\(unlocked - locked)", "memory.freed.in": "\(freed - unlocked)",
            "replaced.freed": "\(gone.object == nil)",
        ])
    }

    /// Hands memory back now if the replaced state is freed, else once it is
    /// (``ProcessMemory/returnFreed(when:interval:patience:trim:done:)``).
    private func handBack(_ gone: WeakReference<ServingState>, of model: ServedModel) {
        guard gone.object != nil else { return ProcessMemory.returnFreed() }
        let logger = logger, name = model.name
        ProcessMemory.returnFreed(when: { gone.object == nil }) { waited in
            if let waited {
                logger.info("memory handed back once the replaced version was freed", metadata: [
                    "model.name": "\(name)", "waited": "\(waited)",
                ])
            } else {
                logger.warning("a replaced version is still held after 10 minutes; its memory is not handed back", metadata: [
                    "model.name": "\(name)",
                ])
            }
        }
    }

    /// The most observations a swap learns under the learning lock, when it can help it: the
    /// catch-up before the swap repeats until the log's tail is this short (or ``catchUpRounds``).
    static let lockedTail: Int64 = 1_000, catchUpRounds = 8

    /// Learns into `state` the log after `seq` up to what the serving state has learned, without
    /// blocking anyone, again and again while more arrived meanwhile than ``lockedTail``: each
    /// round is shorter than the last (a catch-up learns faster than observations arrive), so
    /// the swap learns only a short tail under the learning lock. Returns the sequence reached.
    /// With `bounded`, the state keeps few users hot (``ServingState/CatchUpBound``).
    func catchUp(_ state: ServingState, after seq: Int64, lockedTail: Int64 = lockedTail,
                 bounded bound: ServingState.CatchUpBound? = nil) throws -> Int64 {
        var caught = seq
        for _ in 0..<Self.catchUpRounds {
            let target = progress.sequence
            guard target - caught > lockedTail else { break }
            // Every observation up to `target` is in the log (it was learned), so all are now.
            try state.replay(log: stores.log, after: caught, through: target, bounded: bound)
            caught = target
        }
        return caught
    }

    /// Makes hot in `state`, the model's serving state, the users `uids` (those hot in the state
    /// it replaced; as many as its hot tier holds), from `state`'s snapshot rows: after a
    /// retrain or a rollback every user would otherwise be cold, and each active user's next
    /// observation would pay a rebuild inside the learning step, where every commit behind it
    /// waits. Until a user is carried, its first observation reads its row ahead like any cold
    /// user's. Runs on ``WarmStart/threads`` threads below the request threads, and stops if
    /// another state is swapped in meanwhile. Returns the users made hot. O(uids) rebuilds.
    /// A user the catch-up demoted is made hot from its row and its observations since
    /// (``UserWeightStore/catchUpLagging(_:through:)``, `laggingThrough`).
    @discardableResult
    func carryHotSet(_ uids: [String], to state: ServingState, of model: ServedModel, laggingThrough: Int64? = nil) -> Int {
        guard !uids.isEmpty else { return 0 }
        let clock = ContinuousClock(), start = clock.now
        let users = state.users
        let made = users.warm(uids, threads: WarmStart.threads, laggingThrough: laggingThrough) { model.current.users === users }
        if made > 0 {
            logger.info("hot users carried over", metadata: [
                "model.name": "\(state.version.model)", "model.version": "\(state.version.number)",
                "users": "\(made)", "duration": "\(clock.now - start)",
            ])
        }
        return made
    }

    /// Ends `state`'s catch-up once it serves: the users it demoted that the hot set carried over
    /// did not name are made hot too (they changed since their rows, so they belong to the next
    /// snapshot, which until then stays below them), then ``UserWeightStore/recent`` is closed.
    /// A user whose rebuild fails lags on, replayed from the log. O(demoted users) rebuilds.
    private func finishCatchUp(_ state: ServingState, of model: ServedModel, through: Int64) {
        let users = state.users
        guard users.recent.from != nil else { return }
        let clock = ContinuousClock(), start = clock.now
        let recorded = users.recent.count, lagging = users.laggingUids()
        let made = users.warm(lagging, threads: WarmStart.threads, laggingThrough: through) { model.current.users === users }
        users.recent.close()
        logger.info("catch-up finished", metadata: [
            "model.name": "\(model.name)", "model.version": "\(state.version.number)", "observations.recorded": "\(recorded)",
            "users.lagging": "\(lagging.count)", "users.made.hot": "\(made)", "duration": "\(clock.now - start)",
        ])
    }

    /// Computes, from `state`, the answers to the hottest queries in `previous`'s cache (items are
    /// matched by id; ones the new version lacks are skipped). Returns how many were cached.
    /// O(repopulate · (d or a top-k scan)).
    static func repopulate(_ state: ServingState, from previous: ServingState) -> Int {
        let limit = state.predictions.configuration.repopulate
        guard state.predictions.isEnabled, limit > 0 else { return 0 }
        var warmed = 0
        for key in previous.predictions.hottest(limit) {
            var query = key.query
            if case .score(let row) = query {
                guard state.predictions.caches(query), let newRow = state.features.row(of: previous.features.id(of: row)) else { continue }
                query = .score(item: newRow)
            }
            if (try? Predictor.answer(query, uid: key.uid, in: state, lookup: false)) != nil { warmed += 1 }
        }
        return warmed
    }

    // MARK: Competing versions

    /// Starts a competition (Velox §5, "multiple models"): version `number` (any stored version
    /// but the serving one) serves the users `allocation` gives it, with its own user weights to
    /// which every observation logged since they were saved is applied first (as a rollback
    /// does); both versions learn every observation from then on. Runs off the concurrency pool.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownVersion`, `conflict` for the serving
    ///   version or while another competition runs.
    public func startCompetition(model name: String, challenger number: Int, allocation: TrafficAllocation) async throws {
        try registry.requireLoneProcess("a competition")
        try await Self.offPool { try self.startCompetitionNow(model: name, challenger: number, allocation: allocation) }
    }

    /// ``startCompetition(model:challenger:allocation:)`` on the caller's thread.
    func startCompetitionNow(model name: String, challenger number: Int, allocation: TrafficAllocation) throws {
        let model = try registry.model(name)
        guard model.competition == nil else {
            throw OspreyError(.conflict, "model `\(name)` already has a challenger; promote it or stop the competition first")
        }
        guard number != model.version.number else {
            throw OspreyError(.conflict, "version \(number) is the serving version; a challenger must be another one")
        }
        try requireVersion(number, of: name)
        let through = progress.sequence
        let (state, replayed) = try loader.load(model: name, version: number, through: through,
                                                continuing: .init(model))
        try installChallenger(state, in: model, caughtUpThrough: max(replayed, through), allocation: allocation)
    }

    /// Attaches `state` as the model's challenger. It has learned the log up to `seq`; the rest
    /// is learned as in an install, the tail under the learning lock, so that from the moment it
    /// competes it has missed no observation and learns every later one.
    func installChallenger(_ state: ServingState, in model: ServedModel, caughtUpThrough seq: Int64,
                           allocation: TrafficAllocation) throws {
        let caught = try state.replay(log: stores.log, after: seq, through: progress.sequence)
        let since = Date().timeIntervalSince1970
        try progress.applied.withLock { last in
            try state.replay(log: stores.log, after: max(seq, caught), through: last)
            guard model.competition == nil else {
                throw OspreyError(.conflict, "model `\(model.name)` already has a challenger; promote it or stop the competition first")
            }
            try stores.versions.setCompetition(model: model.name, CompetitionRecord(
                challenger: state.version.number, allocation: allocation.description, since: since))
            let competition = Competition(challenger: state, allocation: allocation, since: since,
                                          metrics: CompetitionMetrics(model: model.name, factory: model.metrics.factory),
                                          persist: Self.persistAssignment(model: model.name, since: since, decisions))
            competition.recordShare(champion: model.version.number)
            model.competition = competition
        }
        logger.info("competition started", metadata: [
            "model.name": "\(model.name)", "champion": "\(model.version.number)",
            "challenger": "\(state.version.number)", "allocation": "\(allocation)",
        ])
    }

    /// Ends the competition; every user is served by the serving version again.
    /// - Throws: ``OspreyError`` `unknownModel`, or `conflict` when there is none.
    public func stopCompetition(model name: String) throws {
        let model = try registry.model(name)
        let gone = try progress.applied.withLock { _ -> WeakReference<ServingState> in
            guard let competition = model.competition else {
                throw OspreyError(.conflict, "model `\(name)` has no challenger")
            }
            try stores.versions.setCompetition(model: name, nil)
            model.competition = nil
            logger.info("competition stopped", metadata: [
                "model.name": "\(name)", "challenger": "\(competition.challenger.version.number)",
            ])
            return WeakReference(object: competition.challenger)
        }
        handBack(gone, of: model)
    }

    /// Makes the challenger the serving version (with the weights it learned while competing)
    /// and ends the competition. Returns its number.
    /// - Throws: ``OspreyError`` `unknownModel`, or `conflict` when there is no challenger.
    @discardableResult
    public func promote(model name: String) throws -> Int {
        try registry.requireLoneProcess("a promotion")
        let model = try registry.model(name)
        let (number, gone) = try progress.applied.withLock { _ -> (Int, WeakReference<ServingState>) in
            guard let competition = model.competition else {
                throw OspreyError(.conflict, "model `\(name)` has no challenger to promote")
            }
            let state = competition.challenger
            try stores.versions.promoteChallenger(model: name, version: state.version.number)
            let replaced = model.swap(to: state)
            model.competition = nil
            logger.info("challenger promoted", metadata: ["model.name": "\(name)", "model.version": "\(state.version.number)"])
            return (state.version.number, WeakReference(object: replaced))
        }
        handBack(gone, of: model)
        return number
    }

    /// The competition stored for a model, restored at startup: the challenger's state from its
    /// snapshot and the log, its users' assignments, and each version's reward from the
    /// decisions logged since it started joined with their feedback.
    static func restoreCompetition(_ record: CompetitionRecord, of model: ServedModel, stores: Stores, loader: Loader,
                                   decisions: DecisionLog) throws -> Competition {
        let allocation = try TrafficAllocation.parse(record.allocation)
        let (state, _) = try loader.load(model: model.name, version: record.challenger, continuing: .init(model))
        let assigned = if case .thompson = allocation { try stores.decisions.assignments(model: model.name, since: record.since) } else { [String: Int]() }
        let competition = Competition(challenger: state, allocation: allocation, since: record.since, assigned: assigned,
                                      metrics: CompetitionMetrics(model: model.name, factory: model.metrics.factory),
                                      persist: persistAssignment(model: model.name, since: record.since, decisions))
        let versions = try stores.decisions.decisionVersions(model: model.name, since: record.since)
        for version in versions.values { competition.countDecision(version: version) }
        for (id, feedback) in try stores.log.feedback(model: model.name) {
            if let version = versions[id] { competition.record(version: version, reward: Double(feedback.label)) }
        }
        competition.recordShare(champion: model.version.number)
        return competition
    }

    private static func persistAssignment(model: String, since: Double, _ decisions: DecisionLog) -> @Sendable (String, Int) -> Void {
        { uid, version in decisions.append(Assignment(model: model, since: since, uid: uid, version: version)) }
    }

    private func requireVersion(_ number: Int, of name: String) throws {
        guard try stores.versions.versions(model: name).contains(where: { $0.number == number }) else {
            throw OspreyError(.unknownVersion, "model `\(name)` has no version \(number); GET /v1/models/\(name) lists them")
        }
    }

    /// Runs blocking work (store reads, a replay) on a dispatch queue, off the Swift concurrency
    /// pool that serves requests.
    static func offPool(_ work: @escaping @Sendable () throws -> Void) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global(qos: .userInitiated).async { continuation.resume(with: Result { try work() }) }
        }
    }
}
