import Logging
import OspreyModel
import OspreyStorage

/// The batch steps of one retrain of one model, in the order a reader can follow and test apart:
/// ``gather(through:)`` the ratings, ``train(_:)`` by ALS and ``store(_:gathered:)`` the new
/// version (status `built`). They read the version they replace through ``RetrainParent``, so
/// they run alike in the serving process and in a retrain worker (``RetrainWorker``). The
/// serving steps (load, swap, prune) are the ``Retrainer``'s. Each step throws instead of
/// changing what serves.
struct RetrainRun {
    let job: Int
    /// What started it, recorded in the new version's metadata.
    let trigger: RetrainJob.Trigger
    /// The version it replaces, and what it carries over from it.
    let parent: RetrainParent
    /// Where the job's phase and iterations are reported, and whether it was cancelled.
    let progress: Progress
    let stores: Stores
    let configuration: Manager.Configuration
    let logger: Logger
    /// Factors trained elsewhere that ``train(_:)`` makes the version of, instead of ALS.
    var factors: FactorImport? = nil
    /// The batch layer that fits the version in ``train(_:)`` instead of the built-in ALS.
    var external: (any ExternalTrainer)? = nil

    /// Where a run reports what it does: the job's record in the serving process, a worker's
    /// standard output in a retrain worker.
    struct Progress: Sendable {
        /// The job moved to another phase.
        var phase: @Sendable (RetrainJob.Phase) -> Void
        /// ALS finished iteration `i` of `n` of the final fit.
        var iteration: @Sendable (_ i: Int, _ n: Int) -> Void
        /// Candidate λ fitted so far.
        var lambdaFits: @Sendable (Int) -> Void
        /// Whether cancellation was asked for.
        var isCancelled: @Sendable () -> Bool
    }

    /// What a retrain trains on.
    struct Gathered {
        /// The initial ratings and the log up to `through`, without the validation sample (and
        /// windowed per user when a retrain window is set).
        var ratings: [Rating]
        /// Each user's observations in the log up to `through` (the validation sample included).
        var counts: [String: Int]
        /// The log sequence the new version reflects.
        var through: Int64
        /// The new version's number.
        var number: Int
        /// The version serving when the retrain began: the new one replaces it, or nothing.
        var parent: Int
    }

    /// Reads the ratings to train on: the model's initial ratings plus its log up to `through`.
    /// The validation sample stays out of every fit, so it keeps measuring generalization.
    /// O(ratings + log).
    func gather(through: Int64) throws -> Gathered {
        let model = parent.model, parent = self.parent.version.number
        var ratings = try stores.versions.initialRatings(model: model)
        var counts: [String: Int] = [:]
        try stores.log.forEachObservation(model: model, after: 0) { logged in
            guard logged.seq <= through else { return }
            let o = logged.observation
            counts[o.uid, default: 0] += 1
            if configuration.monitor.holdsOut(seq: logged.seq) { return }
            ratings.append(Rating(uid: o.uid, item: o.item, label: o.label, timestamp: o.time))
        }
        if let window = configuration.retrainWindow { ratings = Self.windowed(window, perUserOf: ratings) }
        let number = (try stores.versions.versions(model: model).map(\.number).max() ?? parent) + 1
        return Gathered(ratings: ratings, counts: counts, through: through, number: number, parent: parent)
    }

    /// Fits version N+1 by ALS with the parent's hyperparameters: a λ given at training is kept;
    /// one chosen by validation is searched for again near the parent's choice (the data moved,
    /// but rarely by a factor of ten). Then fits the attribute map on the catalogue's
    /// attributes (``HashedAttributeFeatures``). Reports progress on the job; stops between
    /// iterations when the job is cancelled. O(ALS + the map's fit). With ``factors``, makes the
    /// version of them instead (``FactorImport``), then fits the map; with ``external``, has it
    /// fit the factors with the parent's hyperparameters (``trainExternally(_:by:)``).
    /// - Throws: `Trainer.Cancelled`, or what the trainer throws.
    func train(_ gathered: Gathered) throws -> Trainer.Result {
        let current = parent.version, model = parent.model
        progress.phase(.training)
        let id = job
        let catalogue = parent.catalogue
        if let external {
            var result = try trainExternally(gathered, by: external)
            result.fitAttributeMap(attributes: { catalogue.item($0)?.attributes }) { [logger] line in
                logger.debug("\(line)", metadata: ["job.id": "\(id)"])
            }
            return result
        }
        if let factors {
            var result = try factors.result(model: model, number: gathered.number, parent: current.number, ratings: gathered.ratings,
                                            trainedThroughSeq: gathered.through) { [logger] line in
                logger.info("\(line)", metadata: ["job.id": "\(id)"])
            }
            result.fitAttributeMap(attributes: { catalogue.item($0)?.attributes }) { [logger] line in
                logger.debug("\(line)", metadata: ["job.id": "\(id)"])
            }
            return result
        }
        let parentLambda = Regularization(lambda: current.metadata.lambda, scaled: current.metadata.scaledLambda)
        let given = current.metadata.lambdaSelection == "given"
        var trainer = Trainer(
            configuration: .init(factors: current.metadata.factors, lambda: given ? parentLambda.lambda : nil,
                                 scaleLambda: parentLambda.scaled, iterations: current.metadata.iterations,
                                 seed: current.metadata.seed, threads: configuration.retrainThreads,
                                 lambdaNear: given ? nil : parentLambda)
        ) { [logger] line in logger.debug("\(line)", metadata: ["job.id": "\(id)"]) }
        trainer.onLambdaFit = progress.lambdaFits
        trainer.onIteration = progress.iteration
        trainer.isCancelled = progress.isCancelled
        var result = try trainer.train(model: model, number: gathered.number, parent: current.number, ratings: gathered.ratings,
                                       trainedThroughSeq: gathered.through, trigger: trigger.rawValue)
        result.fitAttributeMap(attributes: { catalogue.item($0)?.attributes }) { [logger] line in
            logger.debug("\(line)", metadata: ["job.id": "\(id)"])
        }
        return result
    }

    /// Has `external` fit the gathered ratings with the parent's d, λ (kept, not validated
    /// again), iterations and seed, then makes the version of its factors as an import does,
    /// recording those hyperparameters, the trigger and the trainer's lineage.
    /// - Throws: what the trainer throws, `Trainer.Cancelled`, or ``Trainer/ConfigurationError``
    ///   when its factors do not fit together.
    private func trainExternally(_ gathered: Gathered, by external: any ExternalTrainer) throws -> Trainer.Result {
        let current = parent.version.metadata
        let regularization = Regularization(lambda: current.lambda, scaled: current.scaledLambda)
        let id = job, progress = self.progress, iterations = current.iterations
        let started = ContinuousClock.now
        let trained = try external.train(ExternalTrainingRequest(
            model: parent.model, number: gathered.number, ratings: gathered.ratings, factors: current.factors,
            regularization: regularization, iterations: current.iterations, seed: current.seed,
            onIteration: { i in progress.iteration(i, iterations) },
            isCancelled: progress.isCancelled))
        if progress.isCancelled() { throw Trainer.Cancelled() }
        let factors = FactorImport(items: trained.items, users: trained.users, regularization: regularization,
                                   threads: configuration.retrainThreads)
        var result = try factors.result(model: parent.model, number: gathered.number, parent: parent.version.number,
                                        ratings: gathered.ratings, trainedThroughSeq: gathered.through,
                                        trigger: trigger.rawValue) { [logger] line in
            logger.info("\(line)", metadata: ["job.id": "\(id)"])
        }
        result.metadata.factors = current.factors
        result.metadata.iterations = current.iterations
        result.metadata.seed = current.seed
        result.metadata.lambdaSelection = current.lambdaSelection == "given"
            ? "given" : "the parent's \(regularization), not validated again by the external trainer"
        result.metadata.ratings = gathered.ratings.count
        result.metadata.durationSeconds = (ContinuousClock.now - started).seconds
        result.metadata.source = trained.source
        return result
    }

    /// The new version as stored, with its users' weights as ``store(_:gathered:keep:)`` kept them.
    struct Stored {
        var version: ModelVersion
        /// Compact rows (tiered) or full states (untiered), kept for the serving state.
        var cold: [StoredWeights]
        var hot: [(uid: String, weights: UserWeights)]
        /// Each stored user's `w_u` (d floats), kept to start the items' states.
        var weights: [String: [Float]]
    }

    /// What ``store(_:gathered:keep:)`` keeps in memory of the users' weights it stored.
    enum Keep {
        /// What the serving state loads: compact rows (tiered) or full states (untiered).
        case servingState
        /// Each user's `w_u` only: a retrain worker's items' states start from them.
        case weights
        /// Nothing.
        case nothing
    }

    /// Stores the version (status `built`) and its users' weights. The users' states are
    /// streamed into the snapshot store a chunk at a time (a million users' d×d states do not
    /// fit in memory) and kept as `keep` says — for the serving state tiered, only their
    /// compact rows, so the new version's users start cold. A stand-in for a user's past
    /// ratings (see ``windowed(_:perUserOf:)``) is not stored, and the prior averages only real
    /// users' weights. O(users · d³).
    func store(_ trained: Trainer.Result, gathered: Gathered, keep: Keep = .servingState) throws -> Stored {
        // The new version's snapshot says it reflects the log up to `through`, so a restart will
        // not replay what came before: the items users observed until then must be recorded.
        try parent.observed?.saveAll(to: stores, model: parent.model)
        let through = gathered.through, runningLoss = parent.runningLoss
        let tiered = configuration.hotUsers != .max
        var cold: [StoredWeights] = [], hot: [(uid: String, weights: UserWeights)] = [], weights: [String: [Float]] = [:]
        let version = try stores.storeVersion(trained, reflecting: through, trainingRatings: [], serve: false,
                                              chunk: Snapshotter.snapshotChunk, stored: { uid, state in
            guard !uid.hasPrefix(Self.pastPrefix) else { return nil }
            return UserWeights(ridge: state, observations: gathered.counts[uid] ?? 0, runningLoss: runningLoss(uid),
                               bootstrapped: false)
        }, each: { uid, w in
            switch keep {
            case .nothing:
                return
            case .weights:
                weights[uid] = Array(w.ridge.weights[0..<w.ridge.dimension])
            case .servingState where tiered:
                cold.append(StoredWeights(uid: uid, weights: Array(w.ridge.weights[0..<w.ridge.dimension]),
                                          observations: w.observations, runningLoss: w.runningLoss, bootstrapped: w.bootstrapped,
                                          seq: through))
            case .servingState:
                hot.append((uid, w))
            }
        })
        return Stored(version: version, cold: cold, hot: hot, weights: weights)
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
}
