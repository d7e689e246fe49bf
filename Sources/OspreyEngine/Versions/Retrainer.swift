import CoreMetrics
import Dispatch
import Foundation
import Logging
import OspreyModel
import OspreyStorage
import Synchronization

/// Offline retraining (Velox §4.2): starts, tracks and cancels retrain jobs, each a
/// ``RetrainRun`` of five steps (gather, train, store, load, swap) on a background queue, and
/// starts one by itself when a model goes stale if asked to. A failed or cancelled retrain
/// leaves the serving version untouched.
public final class Retrainer: Sendable {
    private let stores: Stores
    private let loader: Loader
    private let installer: Installer
    private let registry: ModelRegistry
    private let progress: LearningProgress
    private let configuration: Manager.Configuration
    private let logger: Logger
    /// Retrain jobs, by id.
    let jobs = Mutex<(jobs: [Int: RetrainJob], nextID: Int)>(([:], 0))
    /// Retrain jobs that failed, and that were cancelled; automatic retrains the limit held back.
    private let failures: Counter, cancellations: Counter, limited: Counter
    /// When each model's automatic retrains started, within the last hour; the models with a
    /// check scheduled for when the limit allows again.
    private let automaticStarts = Mutex<(starts: [String: [ContinuousClock.Instant]], rechecks: Set<String>)>(([:], []))

    init(stores: Stores, loader: Loader, installer: Installer, registry: ModelRegistry, progress: LearningProgress,
         configuration: Manager.Configuration, metrics: EngineMetrics, logger: Logger) {
        failures = metrics.retrainFailures
        cancellations = metrics.retrainCancellations
        limited = metrics.autoRetrainsLimited
        self.stores = stores
        self.loader = loader
        self.installer = installer
        self.registry = registry
        self.progress = progress
        self.configuration = configuration
        self.logger = logger
    }

    /// Starts retraining `model` on a background queue: the initial ratings plus every logged
    /// observation (except the validation sample), ALS with λ chosen by validation, as version
    /// N+1, which then serves — or, with `challenger`, competes with the serving version under
    /// that allocation. Returns the job id.
    /// - Throws: ``OspreyError`` `unknownModel`, or `conflict` while a retrain of the model runs
    ///   (or, for a challenger, while another competes).
    ///
    /// With `importing`, the job makes version N+1 from factors trained elsewhere instead of by
    /// ALS (``FactorImport``: its users fitted to, or kept under, the same ratings a retrain
    /// gathers), and its trigger is `import`; the rest of the job is a retrain's. With
    /// `external`, that batch layer fits the version instead of the built-in ALS
    /// (``ExternalTrainer``).
    public func start(model name: String, challenger: TrafficAllocation? = nil, trigger: RetrainJob.Trigger = .request,
                      importing factors: FactorImport? = nil, trainingWith external: (any ExternalTrainer)? = nil) throws -> Int {
        let trigger = factors == nil ? trigger : .import
        let model = try registry.model(name)
        if challenger != nil { try registry.requireLoneProcess("a challenger") }
        if challenger != nil, model.competition != nil {
            throw OspreyError(.conflict, "model `\(name)` already has a challenger; promote it or stop the competition first")
        }
        // One node of a cluster retrains a model at a time; this node's claim holds until its
        // job ends (``run(job:model:challenger:importing:trainingWith:)``), or it leaves or dies.
        if let cluster = registry.cluster {
            let holder: String?
            do {
                holder = try cluster.claimRetrain(model: name)
            } catch {
                throw OspreyError(.unavailable, "could not claim the retrain of `\(name)` in the cluster's store (\(error)); try again")
            }
            if let holder {
                throw OspreyError(.conflict, "a retrain of `\(name)` is running on node \(holder); every node serves its version when it ends")
            }
        }
        let id = try jobs.withLock { state -> Int in
            if state.jobs.values.contains(where: { $0.model == name && !$0.finished }) {
                throw OspreyError(.conflict, "a retrain of `\(name)` is already running; GET its job or wait for it")
            }
            state.nextID += 1
            state.jobs[state.nextID] = RetrainJob(
                id: state.nextID, model: name, trigger: trigger, phase: .loading, iteration: 0,
                iterations: factors == nil ? model.version.metadata.iterations : 0, startedAt: Date())
            return state.nextID
        }
        logger.info("retrain started", metadata: ["model.name": "\(name)", "job.id": "\(id)", "retrain.trigger": "\(trigger.rawValue)"])
        DispatchQueue.global(qos: .utility).async {
            self.run(job: id, model: model, challenger: challenger, importing: factors, trainingWith: external)
        }
        return id
    }

    /// The job with this id.
    /// - Throws: ``OspreyError`` `unknownJob`.
    public func job(_ id: Int, model: String) throws -> RetrainJob {
        guard let job = jobs.withLock({ $0.jobs[id] }), job.model == model else {
            throw OspreyError(.unknownJob, "model `\(model)` has no job \(id)")
        }
        return job
    }

    /// Asks a running retrain to stop: it ends at its next check (between ALS iterations) unless
    /// it is already installing its version, and the serving version stays as it is. Returns the
    /// job as it is now.
    /// - Throws: ``OspreyError`` `unknownJob`, or `conflict` once it has finished or is installing.
    @discardableResult
    public func cancel(job id: Int, model: String) throws -> RetrainJob {
        try jobs.withLock { state in
            guard var job = state.jobs[id], job.model == model else {
                throw OspreyError(.unknownJob, "model `\(model)` has no job \(id)")
            }
            guard !job.finished else { throw OspreyError(.conflict, "job \(id) has already finished (\(job.phase.rawValue))") }
            guard job.phase != .installing else {
                throw OspreyError(.conflict, "job \(id) is already installing its version; roll back afterwards instead")
            }
            job.cancelRequested = true
            state.jobs[id] = job
            return job
        }
    }

    /// Waits until the job is done, failed or cancelled, and returns it.
    public func wait(forJob id: Int, model: String) async throws -> RetrainJob {
        while true {
            let job = try job(id, model: model)
            if job.finished { return job }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// A serving version's loss rose past the threshold: say so, and retrain if asked to.
    func wentStale(_ model: ServedModel) {
        let quality = model.current.quality
        logger.warning("model is stale", metadata: [
            "model.name": "\(model.name)", "model.version": "\(model.version.number)",
            "loss.window": "\(quality.windowedLoss ?? .nan)", "loss.baseline": "\(quality.baseline ?? .nan)",
        ])
        guard configuration.autoRetrain else { return }
        let now = ContinuousClock.now
        let limit = configuration.autoRetrainLimit
        let (refusal, recheckAt) = automaticStarts.withLock { state -> (String?, ContinuousClock.Instant?) in
            let recent = (state.starts[model.name] ?? []).filter { now - $0 < .seconds(3600) }
            state.starts[model.name] = recent
            guard let refusal = limit.refusal(now: now, starts: recent) else { return (nil, nil) }
            // A model that stays stale sends no new signal: look again once the limit allows.
            let first = state.rechecks.insert(model.name).inserted
            return (refusal, first ? limit.nextAllowed(now: now, starts: recent) : nil)
        }
        if let refusal {
            limited.increment()
            logger.info("no automatic retrain yet", metadata: ["model.name": "\(model.name)", "reason": "\(refusal)"])
            if let recheckAt {
                let delay = recheckAt - now
                let nanoseconds = Int(delay.components.seconds) * 1_000_000_000 + Int(delay.components.attoseconds / 1_000_000_000)
                DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + .nanoseconds(nanoseconds)) { [weak self] in
                    guard let self else { return }
                    _ = self.automaticStarts.withLock { $0.rechecks.remove(model.name) }
                    if model.current.quality.stale { self.wentStale(model) }
                }
            }
            return
        }
        do {
            _ = try start(model: model.name, trigger: .staleness)
            automaticStarts.withLock { $0.starts[model.name, default: []].append(now) }
        } catch {
            logger.info("no automatic retrain", metadata: ["model.name": "\(model.name)", "reason": "\(error)"])
        }
    }

    /// Changes the job's record.
    func update(job id: Int, _ change: (inout RetrainJob) -> Void) {
        jobs.withLock { if var job = $0.jobs[id] { change(&job); $0.jobs[id] = job } }
    }

    /// Whether cancellation of the job was asked for.
    func cancelRequested(_ id: Int) -> Bool { jobs.withLock { $0.jobs[id]?.cancelRequested ?? false } }

    /// Moves the job to `installing` unless cancellation was asked for; from then on a cancel gets
    /// 409. Returns false when it was cancelled.
    func beginInstalling(_ id: Int) -> Bool {
        jobs.withLock { state -> Bool in
            guard var job = state.jobs[id], !job.cancelRequested else { return false }
            job.phase = .installing
            state.jobs[id] = job
            return true
        }
    }

    /// Gathers, trains, stores and swaps in (or attaches as a challenger) the new version;
    /// returns its number. Trains again when a user was erased since it gathered: the version is
    /// stored and swapped in under ``ServedModel/erasing``, after checking that no erasure
    /// finished since the gather began. With a retrain worker (``Manager/Configuration/retrainWorker``)
    /// the first three steps run there (``trainInWorker(_:through:parent:worker:model:job:)``).
    private func trainAndSwap(_ run: RetrainRun, model: ServedModel, job id: Int, challenger: TrafficAllocation?) throws -> Int {
        let worker = run.factors == nil && run.external == nil ? configuration.retrainWorker : nil
        for attempt in 1...Self.erasureAttempts {
            if attempt > 1 {
                update(job: id) { $0.phase = .loading; $0.iteration = 0; $0.lambdaFits = 0 }
                logger.notice("a user was erased while the retrain trained: training again without their data", metadata: [
                    "model.name": "\(model.name)", "job.id": "\(id)", "attempt": "\(attempt)",
                ])
            }
            let erasures = model.erasures.load(ordering: .acquiring)
            // Each step's time, for the `retrain steps` log line (docs/operations.md).
            let clock = ContinuousClock()
            var mark = clock.now, steps: [Duration] = []
            func step() { let now = clock.now; steps.append(now - mark); mark = now }
            // A cluster node has learned only its own users: the log's last sequence (every
            // observation up to it committed, whichever node logged it) is what a retrain reflects.
            let through = registry.cluster == nil ? progress.sequence : try stores.log.lastSequence()
            let parent = model.version.number
            let installed: Int?
            let names = worker == nil ? ["gather", "train", "store", "load", "swap", "prune"] : ["worker", "load", "swap", "prune"]
            if let worker {
                // Gather, train and store: one step, in the worker.
                let number = try trainInWorker(run, through: through, parent: parent, worker: worker, model: model, job: id)
                step()
                installed = try model.erasing.withLock { _ -> Int? in
                    guard model.erasures.load(ordering: .acquiring) == erasures else {
                        // It may hold the erased users' rows: it goes at once, not at a prune.
                        try stores.discardVersion(model: model.name, number: number)
                        return nil
                    }
                    guard beginInstalling(id) else {
                        try stores.discardVersion(model: model.name, number: number)
                        throw Trainer.Cancelled()
                    }
                    return try install(number, of: model, reflecting: through, replacing: parent, challenger: challenger, step: step)
                }
            } else {
                let gathered = try run.gather(through: through)
                step()
                let trained = try run.train(gathered)
                step()
                guard beginInstalling(id) else { throw Trainer.Cancelled() }
                installed = try model.erasing.withLock { _ -> Int? in
                    guard model.erasures.load(ordering: .acquiring) == erasures else { return nil }
                    let stored = try run.store(trained, gathered: gathered)
                    step()
                    if registry.cluster != nil {
                        return try install(stored.version.number, of: model, reflecting: gathered.through, replacing: gathered.parent,
                                           challenger: challenger, step: step)
                    }
                    return try model.replacing(when: challenger == nil) {
                        let state = try loader.load(trained: stored.version, cold: stored.cold, hot: stored.hot,
                                                    ratings: gathered.ratings, baselineAtMost: model.current.quality.baseline,
                                                    continuing: .init(model))
                        step()
                        try swap(state, in: model, caughtUpThrough: gathered.through, replacing: gathered.parent,
                                 challenger: challenger)
                        step()
                        return stored.version.number
                    }
                }
            }
            if let installed {
                // Outside the erasure lock: an erasure need not wait for the deletion of old versions.
                prune(model.name)
                step()
                var metadata: Logger.Metadata = ["model.name": "\(model.name)", "model.version": "\(installed)", "job.id": "\(id)"]
                for (name, duration) in zip(names, steps) {
                    metadata["seconds.\(name)"] = "\(Double(duration / .milliseconds(1)) / 1000)"
                }
                logger.info("retrain steps", metadata: metadata)
                return installed
            }
        }
        throw OspreyError(.conflict, "users were erased while the retrain trained, \(Self.erasureAttempts) times in a row; nothing was stored: retrain again")
    }

    /// Has `worker` gather, train and store the new version, following its phases and
    /// iterations on the job and stopping it when the job is cancelled. The items users
    /// observed up to `through` are recorded first (the version's snapshot says it reflects
    /// them). Returns the version it stored (status `built`).
    /// - Throws: `Trainer.Cancelled`; what the worker reports.
    private func trainInWorker(_ run: RetrainRun, through: Int64, parent: Int, worker: any RetrainWorkerLauncher,
                               model: ServedModel, job id: Int) throws -> Int {
        try model.current.observed.saveAll(to: stores, model: model.name)
        let request = RetrainWorker.Request(
            model: model.name, job: id, trigger: run.trigger.rawValue, through: through, parent: parent, server: getpid(),
            threads: configuration.retrainThreads, window: configuration.retrainWindow,
            validationFraction: configuration.monitor.validationFraction,
            itemStates: configuration.itemUpdates)
        return try worker.run(request, report: { [weak self] event in
            self?.update(job: id) { job in
                if let phase = event.phase.flatMap(RetrainJob.Phase.init(rawValue:)) { job.phase = phase }
                if let fits = event.lambdaFits { job.lambdaFits = fits }
                if let i = event.iteration { job.iteration = i }
                if let n = event.iterations { job.iterations = n }
            }
        }, isCancelled: { [weak self] in self?.cancelRequested(id) ?? true })
    }

    /// Loads version `number`, stored reflecting the log up to `through`, and swaps it in (or
    /// attaches it as a challenger); a cluster node publishes it instead, for every node (this
    /// one included) to follow. Returns `number`.
    private func install(_ number: Int, of model: ServedModel, reflecting through: Int64, replacing parent: Int,
                         challenger: TrafficAllocation?, step: () -> Void) throws -> Int {
        if registry.cluster != nil {
            step()
            try installer.publish(number, of: model, replacing: parent)
            step()
            return number
        }
        return try model.replacing(when: challenger == nil) {
            let (state, replayed) = try loader.load(model: model.name, version: number, through: progress.sequence,
                                                    continuing: .init(model), baselineAtMost: model.current.quality.baseline,
                                                    catchingUp: challenger == nil)
            step()
            try swap(state, in: model, caughtUpThrough: max(replayed, through), replacing: parent, challenger: challenger)
            step()
            return number
        }
    }

    /// Installs the new state in place of `parent` (or attaches it as a challenger).
    /// - Throws: ``OspreyError`` `conflict` when another version serves now than when the retrain
    ///   began (a rollback or a promotion meanwhile wins: the new version is not served).
    private func swap(_ state: ServingState, in model: ServedModel, caughtUpThrough through: Int64, replacing parent: Int,
                      challenger: TrafficAllocation?) throws {
        if let challenger {
            try installer.installChallenger(state, in: model, caughtUpThrough: through, allocation: challenger)
        } else {
            try installer.install(state, in: model, caughtUpThrough: through, replacing: parent)
        }
    }

    /// Prunes versions past ``Manager/Configuration/keepVersions`` (``VersionPolicy``); a failure
    /// is logged, as the new version serves regardless.
    private func prune(_ model: String) {
        do {
            let pruned = try stores.pruneVersions(model: model, keep: configuration.keepVersions)
            if !pruned.isEmpty {
                logger.info("pruned old versions", metadata: ["model.name": "\(model)", "versions": "\(pruned)"])
            }
        } catch {
            logger.error("could not prune old versions; the new version serves", metadata: [
                "model.name": "\(model)", "error": "\(error)",
            ])
        }
    }

    /// How many times a retrain trains at most when users are erased while it trains (each time
    /// it gathered their data before the erasure), before it gives up.
    static let erasureAttempts = 3

    /// Runs a retrain job to its end; a failure leaves the serving version untouched. A user
    /// erased while it trained is not in what it stores: it trains again (docs/operations.md,
    /// "Erasing a user").
    private func run(job id: Int, model: ServedModel, challenger: TrafficAllocation?, importing factors: FactorImport?,
                     trainingWith external: (any ExternalTrainer)?) {
        var staleAfterwards = false
        defer {
            // A cluster node gives up its claim first: the retrain this may start claims again.
            if let cluster = registry.cluster {
                do {
                    try cluster.releaseRetrain(model: model.name)
                } catch {
                    logger.warning("could not give up the claim on the model's retrain; other nodes can retrain it once this node leaves",
                                   metadata: ["model.name": "\(model.name)", "job.id": "\(id)", "error": "\(error)"])
                }
            }
            if staleAfterwards { wentStale(model) }
        }
        do {
            let trigger = jobs.withLock { $0.jobs[id]?.trigger } ?? .request
            let run = RetrainRun(
                job: id, trigger: trigger, parent: RetrainParent(model),
                progress: .init(phase: { [weak self] phase in self?.update(job: id) { $0.phase = phase } },
                                iteration: { [weak self] i, n in self?.update(job: id) { $0.iteration = i; $0.iterations = n } },
                                lambdaFits: { [weak self] n in self?.update(job: id) { $0.lambdaFits = n } },
                                isCancelled: { [weak self] in self?.cancelRequested(id) ?? true }),
                stores: stores, configuration: configuration, logger: logger, factors: factors, external: external)
            let number = try trainAndSwap(run, model: model, job: id, challenger: challenger)
            update(job: id) { $0.phase = .done; $0.version = number; $0.finishedAt = Date() }
            logger.info("retrain finished", metadata: ["model.name": "\(model.name)", "model.version": "\(number)", "job.id": "\(id)"])
            // Observations that arrived during the retrain were replayed into the new version
            // before it served; if they already show it stale, act on that now.
            staleAfterwards = model.current.quality.stale
        } catch is Trainer.Cancelled {
            // Counted before the job reads finished, so whoever waits for it sees the count.
            cancellations.increment()
            update(job: id) { $0.phase = .cancelled; $0.finishedAt = Date() }
            logger.notice("retrain cancelled; the serving version is unchanged", metadata: [
                "model.name": "\(model.name)", "job.id": "\(id)",
            ])
        } catch {
            // A version it stored but could not serve is marked failed, not left as if retired.
            _ = try? stores.versions.failUnservedVersions(model: model.name)
            failures.increment()
            update(job: id) { $0.phase = .failed; $0.error = "\(error)"; $0.finishedAt = Date() }
            logger.error("retrain failed; the serving version is unchanged", metadata: [
                "model.name": "\(model.name)", "job.id": "\(id)", "error": "\(error)",
            ])
        }
    }
}
