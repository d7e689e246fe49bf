import Dispatch
import Foundation
import OspreyModel
import OspreyStorage

/// Offline retraining and rollback (Velox §4.2): a new version is built beside the one serving,
/// then swapped in atomically with every observation that arrived meanwhile applied to it.
extension Manager {
    /// Starts retraining `model` on a background queue: the initial ratings plus every logged
    /// observation (except the validation sample), ALS with λ chosen by validation, as version
    /// N+1, which then serves — or, with `challenger`, competes with the serving version under
    /// that allocation. Returns the job id.
    /// - Throws: ``OspreyError`` `unknownModel`, or `conflict` while a retrain of the model runs
    ///   (or, for a challenger, while another competes).
    public func startRetrain(model name: String, challenger: TrafficAllocation? = nil) throws -> Int {
        let model = try registry.model(name)
        if challenger != nil, model.competition != nil {
            throw OspreyError(.conflict, "model `\(name)` already has a challenger; promote it or stop the competition first")
        }
        let id = try jobs.withLock { state -> Int in
            if state.jobs.values.contains(where: { $0.model == name && !$0.finished }) {
                throw OspreyError(.conflict, "a retrain of `\(name)` is already running; GET its job or wait for it")
            }
            state.nextID += 1
            state.jobs[state.nextID] = RetrainJob(
                id: state.nextID, model: name, phase: .loading, iteration: 0,
                iterations: model.version.metadata.iterations, startedAt: Date())
            return state.nextID
        }
        logger.info("retrain started", metadata: ["model.name": "\(name)", "job.id": "\(id)"])
        DispatchQueue.global(qos: .utility).async { self.runRetrain(job: id, model: model, challenger: challenger) }
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

    /// Whether cancellation of the job was asked for.
    func cancelRequested(_ id: Int) -> Bool { jobs.withLock { $0.jobs[id]?.cancelRequested ?? false } }

    /// Waits until the job is done, failed or cancelled, and returns it.
    public func wait(forJob id: Int, model: String) async throws -> RetrainJob {
        while true {
            let job = try job(id, model: model)
            if job.finished { return job }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    private func update(job id: Int, _ change: (inout RetrainJob) -> Void) {
        jobs.withLock { if var job = $0.jobs[id] { change(&job); $0.jobs[id] = job } }
    }

    /// Runs a retrain job to its end; a failure leaves the serving version untouched.
    private func runRetrain(job id: Int, model: ServedModel, challenger: TrafficAllocation?) {
        do {
            let number = try retrain(model, job: id, challenger: challenger)
            update(job: id) { $0.phase = .done; $0.version = number; $0.finishedAt = Date() }
            logger.info("retrain finished", metadata: ["model.name": "\(model.name)", "model.version": "\(number)", "job.id": "\(id)"])
            // Observations that arrived during the retrain were replayed into the new version
            // before it served; if they already show it stale, act on that now.
            if model.current.quality.stale { wentStale(model) }
        } catch is Trainer.Cancelled {
            update(job: id) { $0.phase = .cancelled; $0.finishedAt = Date() }
            retrainCancellations.add(1, ordering: .relaxed)
            logger.notice("retrain cancelled; the serving version is unchanged", metadata: [
                "model.name": "\(model.name)", "job.id": "\(id)",
            ])
        } catch {
            // A version it stored but could not serve is marked failed, not left as if retired.
            _ = try? stores.versions.failUnservedVersions(model: model.name)
            update(job: id) { $0.phase = .failed; $0.error = "\(error)"; $0.finishedAt = Date() }
            retrainFailures.add(1, ordering: .relaxed)
            logger.error("retrain failed; the serving version is unchanged", metadata: [
                "model.name": "\(model.name)", "job.id": "\(id)", "error": "\(error)",
            ])
        }
    }

    /// Trains, stores and installs the next version. Returns its number. O(ALS).
    private func retrain(_ model: ServedModel, job id: Int, challenger: TrafficAllocation?) throws -> Int {
        let current = model.current.version
        let through = applied.withLock { $0 }
        var ratings = try stores.versions.initialRatings(model: model.name)
        var counts: [String: Int] = [:]
        try stores.log.forEachObservation(model: model.name, after: 0) { logged in
            guard logged.seq <= through else { return }
            let o = logged.observation
            counts[o.uid, default: 0] += 1
            // The validation sample stays out of every fit, so it keeps measuring generalization.
            if configuration.monitor.holdsOut(seq: logged.seq) { return }
            ratings.append(Rating(uid: o.uid, item: o.item, label: o.label, timestamp: o.time))
        }
        if let window = configuration.retrainWindow { ratings = Self.windowed(window, perUserOf: ratings) }
        let number = (try stores.versions.versions(model: model.name).map(\.number).max() ?? current.number) + 1
        update(job: id) { $0.phase = .training }
        // A λ given at training is kept; one chosen by validation is searched for again near the
        // parent's choice (the data moved, but rarely by a factor of ten).
        let parentLambda = Regularization(lambda: current.metadata.lambda, scaled: current.metadata.scaledLambda)
        let given = current.metadata.lambdaSelection == "given"
        var trainer = Trainer(
            configuration: .init(factors: current.metadata.factors, lambda: given ? parentLambda.lambda : nil,
                                 scaleLambda: parentLambda.scaled, iterations: current.metadata.iterations,
                                 seed: current.metadata.seed, threads: configuration.retrainThreads,
                                 lambdaNear: given ? nil : parentLambda)
        ) { [logger] line in logger.debug("\(line)", metadata: ["job.id": "\(id)"]) }
        trainer.onLambdaFit = { [weak self] n in self?.update(job: id) { $0.lambdaFits = n } }
        trainer.onIteration = { [weak self] i, n in self?.update(job: id) { $0.iteration = i; $0.iterations = n } }
        trainer.isCancelled = { [weak self] in self?.cancelRequested(id) ?? true }
        let result = try trainer.train(model: model.name, number: number, parent: current.number, ratings: ratings, trainedThroughSeq: through)
        ratings = []  // the trainer keeps its own compact copy (IDs as rows)

        // From here the job cannot be cancelled: a request now gets 409 (see cancel(job:model:)).
        let cancelled = jobs.withLock { state -> Bool in
            guard var job = state.jobs[id] else { return true }
            if job.cancelRequested { return true }
            job.phase = .installing
            state.jobs[id] = job
            return false
        }
        if cancelled { throw Trainer.Cancelled() }
        let old = model.current.users
        // The new version's snapshot says it reflects the log up to `through`, so a restart will
        // not replay what came before: the items users observed until then must be recorded.
        let observed = model.current.observed
        let pending = observed.takeAll()
        do { try stores.snapshots.saveObservedItems(model: model.name, pending) } catch {
            observed.putBack(pending)
            throw error
        }
        // The users' states are streamed into the snapshot store a chunk at a time (a million
        // users' d×d states do not fit in memory); tiered, only their compact rows are kept here,
        // and the new version's users start cold. A stand-in for a user's past ratings (see
        // `windowed`) is not stored, and the prior averages only real users' weights.
        let tiered = configuration.hotUsers != .max
        var cold: [StoredWeights] = [], hot: [(uid: String, weights: UserWeights)] = []
        let version = try stores.storeVersion(result, reflecting: through, trainingRatings: [], serve: false, stored: { uid, state in
            guard !uid.hasPrefix(Self.pastPrefix) else { return nil }
            return UserWeights(ridge: state, observations: counts[uid] ?? 0, runningLoss: old.read(uid) { $0?.runningLoss },
                               bootstrapped: false)
        }, each: { uid, w in
            if tiered {
                cold.append(StoredWeights(uid: uid, weights: Array(w.ridge.weights[0..<w.ridge.dimension]), observations: w.observations,
                                          runningLoss: w.runningLoss, bootstrapped: w.bootstrapped, seq: through))
            } else {
                hot.append((uid, w))
            }
        })
        // The new version is held to the best standard the model has met, not only its own:
        // a retrain that did not recover (say, fitted on data still from before a drift) stays
        // subject to the next one.
        let previousBaseline = model.current.quality.baseline
        let fresh = UserWeightStore(
            stride: version.features.stride, hotUsers: configuration.hotUsers,
            rebuild: ServingState.rebuilder(stores: stores, version: version, validation: configuration.monitor, observed: observed),
            statistics: old.statistics)
        fresh.reserve(users: cold.count + hot.count)
        for row in cold { fresh.insertCold(row) }
        for (uid, w) in hot { fresh.insertHot(uid, w) }
        cold = []
        hot = []
        // Everything each user ever rated (not only the possibly windowed training ratings).
        let state = ServingState(
            version: version, users: fresh, observed: observed,
            monitor: configuration.monitor, baselineAtMost: previousBaseline, predictions: nextCache(for: model),
            features: configuration.featureCache, featureStatistics: model.featureStatistics)
        if let challenger {
            try installChallenger(state, in: model, caughtUpThrough: through, allocation: challenger)
        } else {
            try install(state, in: model, caughtUpThrough: through)
        }
        Self.returnFreedMemory()
        let pruned = try stores.pruneVersions(model: model.name, keep: configuration.keepVersions)
        if !pruned.isEmpty {
            logger.info("pruned old versions", metadata: ["model.name": "\(model.name)", "versions": "\(pruned)"])
        }
        return number
    }

    /// The prefix of the stand-in users that hold a user's ratings from before the retrain window.
    static let pastPrefix = "\u{0}before-window\u{0}"

    /// Each user's latest `window` ratings (by timestamp; log observations are newer than the
    /// initial ratings) stay theirs; older ones go, `window` at a time from the newest, to
    /// stand-in users (``pastPrefix``, the slice number, NUL, the uid) — the user as they were
    /// then. So the user's new weights fit only their recent tastes, while the items keep every
    /// rating as evidence, each fitted against the user's tastes of its time (as timeSVD++ gives a
    /// user a factor per period). The stand-ins are dropped after training. Order is kept.
    /// O(n log n).
    static func windowed(_ window: Int, perUserOf ratings: [Rating]) -> [Rating] {
        var byUser: [String: [Int]] = [:]
        for (i, r) in ratings.enumerated() { byUser[r.uid, default: []].append(i) }
        var out = ratings
        for indices in byUser.values where indices.count > window {
            let newestFirst = indices.sorted { (ratings[$0].timestamp, $0) > (ratings[$1].timestamp, $1) }
            for (n, i) in newestFirst.enumerated().dropFirst(window) {
                out[i].uid = pastPrefix + "\(n / window)\u{0}" + ratings[i].uid
            }
        }
        return out
    }

    /// Serves version `number` again (Velox §6): θ of that version with its own user weights, to
    /// which every observation logged since they were saved is applied, so nothing learned is
    /// dropped and the result equals a fresh server started on that version.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownVersion`.
    public func rollback(model name: String, to number: Int) throws {
        let model = try registry.model(name)
        guard try stores.versions.versions(model: name).contains(where: { $0.number == number }) else {
            throw OspreyError(.unknownVersion, "model `\(name)` has no version \(number); GET /v1/models/\(name) lists them")
        }
        if model.competition?.challenger.version.number == number {
            throw OspreyError(.conflict, "version \(number) is competing as the challenger; promote it instead")
        }
        let through = applied.withLock { $0 }
        let (state, replayed) = try ServingState.restore(
            model: name, version: number, stores: stores, through: through, monitor: configuration.monitor,
            predictions: nextCache(for: model), features: configuration.featureCache, featureStatistics: model.featureStatistics,
            hotUsers: configuration.hotUsers, statistics: model.current.users.statistics,
            observed: model.current.observed)
        try install(state, in: model, caughtUpThrough: max(replayed, through))
        logger.info("rolled back", metadata: ["model.name": "\(name)", "model.version": "\(number)"])
    }

    /// ``rollback(model:to:)`` on a dispatch queue, off the Swift concurrency pool (it reads the
    /// store and replays the log).
    public func rollbackInBackground(model name: String, to number: Int) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try self.rollback(model: name, to: number) })
            }
        }
    }

    /// An empty prediction cache for the model's next serving state, continuing the counts.
    private func nextCache(for model: ServedModel) -> PredictionCache {
        PredictionCache(configuration: configuration.predictionCache, statistics: model.current.predictions.statistics)
    }

    /// Swaps `state` in atomically. It has learned the log up to `seq`; the rest is learned in
    /// two steps — most of it without blocking anyone, the tail under the learning lock — so
    /// that no observation is learned twice or skipped, and the swap and the catalogue's record
    /// of the serving version happen together. Before the swap, the answers hottest in the
    /// serving state's cache are computed again from the new one (Velox §4.2), so the first
    /// requests after it are not all misses.
    private func install(_ state: ServingState, in model: ServedModel, caughtUpThrough seq: Int64) throws {
        let caught = try state.replay(stores: stores, after: seq, through: applied.withLock { $0 })
        let warmed = Self.repopulate(state, from: model.current)
        if warmed > 0 {
            logger.info("prediction cache repopulated", metadata: [
                "model.name": "\(model.name)", "model.version": "\(state.version.number)", "answers": "\(warmed)",
            ])
        }
        try applied.withLock { last in
            try state.replay(stores: stores, after: max(seq, caught), through: last)
            try stores.versions.setServing(model: model.name, version: state.version.number)
            model.swap(to: state)
        }
    }

    /// Computes, from `state`, the answers to the hottest queries in `previous`'s cache (items are
    /// matched by id; ones the new version lacks are skipped). Returns how many were cached.
    /// O(repopulate · (d or a top-k scan)).
    static func repopulate(_ state: ServingState, from previous: ServingState) -> Int {
        let limit = state.predictions.configuration.repopulate
        guard state.predictions.isEnabled, limit > 0 else { return 0 }
        let oldCatalog = previous.version.features.catalog, newCatalog = state.version.features.catalog
        var warmed = 0
        for key in previous.predictions.hottest(limit) {
            var query = key.query
            if case .score(let row) = query {
                guard state.predictions.caches(query), let newRow = newCatalog.row(of: oldCatalog.ids[row]) else { continue }
                query = .score(item: newRow)
            }
            if (try? Predictor.answer(query, uid: key.uid, in: state, lookup: false)) != nil { warmed += 1 }
        }
        return warmed
    }
}
