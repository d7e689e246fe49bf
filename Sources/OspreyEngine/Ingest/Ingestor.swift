import CoreMetrics
import Foundation
import Logging
import OspreyModel
import OspreyStorage
import ServiceLifecycle

/// Takes observations in (Velox §4, the manager's ingest): one observation reads top to bottom
/// here, from validation to the acknowledgement (docs/architecture.md, "The path of one
/// observation"):
///
/// 1. ``observe(model:_:completion:)`` validates the feedback and looks up its event ids;
///    nothing is logged if any of it is bad. A cold user's state is read ahead meanwhile.
/// 2. The ``GroupCommitter`` appends the observations of every concurrent caller to the log in
///    one durable commit.
/// 3. ``learn(_:)`` learns the committed batch in log order under the learning lock.
/// 4. The completion runs: the observations are durable *and* learned.
///
/// As a `Service` it closes the group commit on graceful shutdown and waits for the commits
/// already queued, so every caller gets its answer before the final snapshot.
public final class Ingestor: Service, Sendable {
    private let registry: ModelRegistry
    private let decisions: DecisionLog
    private let progress: LearningProgress
    /// What an id and a label must be (``InputRules``).
    public let rules: InputRules
    private let readAhead: WorkerPool
    private let logger: Logger
    private let committer: GroupCommitter

    /// - Parameter onStale: called (on the commit queue) with a model an observation made stale.
    init(log: any ObservationLog, registry: ModelRegistry, decisions: DecisionLog, progress: LearningProgress,
         rules: InputRules, readAhead: WorkerPool, metrics: IngestMetrics, logger: Logger,
         onStale: @escaping @Sendable (ServedModel) -> Void) {
        self.registry = registry
        self.decisions = decisions
        self.progress = progress
        self.rules = rules
        self.readAhead = readAhead
        self.logger = logger
        committer = GroupCommitter(metrics: metrics, commit: { observations in
            // On a cluster node, ownership is checked again just before the commit: a user whose
            // bucket moved while its observation waited is not logged here, where its new owner
            // (which may have adopted it already) would never learn it.
            guard let cluster = registry.cluster else { return try log.append(observations) }
            let buckets = observations.map { cluster.bucket(of: $0.uid) }
            if let moved = buckets.firstIndex(where: { cluster.route(bucket: $0) != .local }) {
                throw OspreyError(.unavailable, "user `\(observations[moved].uid)` moved to another node while its observation waited for the commit; nothing of this batch was logged: retry")
            }
            // And in the commit itself: a bucket's new owner claims it in the log before it
            // adopts its users, so it reads this commit, or this commit fails.
            do {
                return try log.append(observations, fence: AppendFence(node: cluster.name, buckets: Array(Set(buckets))))
            } catch let error as StorageError where error.code == .conflict {
                throw OspreyError(.unavailable, "a user of this batch moved to another node during the commit (\(error.message)); nothing of it was logged: retry")
            }
        }) { batch in
            Self.learn(batch, registry: registry, progress: progress, logger: logger, onStale: onStale)
        }
    }

    /// Checks `items` now, throwing before anything is logged, then calls `completion` once the
    /// observations are durable and learned, with the serving version, or with `unavailable`
    /// when the log cannot commit. All or none: one bad observation rejects the whole call, and
    /// the error names it (`observation 3: …`) when there are several. Each uid, item and event
    /// id must pass ``rules`` and each label lie within ±``InputRules/maxAbsLabel``.
    /// An observation with an event id must name a logged decision of this model for this user
    /// (looking it up may read the decision log); one answering an item the decision showed by
    /// exploring feeds the exploration pool. `completion` runs on the group-commit queue and
    /// must be quick. O(items) here, O(items · d²) in the learning step.
    /// - Throws: ``OspreyError`` `unknownModel`, `invalidArgument`, `unknownEvent` for an event id
    ///   that is unknown or another user's, `unavailable` when the decision log cannot be read.
    public func observe(model name: String, _ items: [Feedback],
                        completion: @escaping @Sendable (Result<Acknowledgement, OspreyError>) -> Void) throws {
        let checked = try check(model: name, items)
        guard !checked.observations.isEmpty else { return completion(.success(Acknowledgement(version: checked.model.version.number))) }
        committer.submit(checked.observations) { result in
            switch result {
            case .failure(let error): completion(.failure(self.commitFailure(error)))
            case .success(let duplicate):
                // A retry's reward was credited with its first delivery.
                let version = self.credit(checked, skipping: duplicate)
                completion(.success(Acknowledgement(version: version, duplicates: duplicate.count { $0 })))
            }
        }
    }

    /// Closes the group commit on graceful shutdown and waits for the commits queued before.
    public func run() async throws {
        try? await gracefulShutdown()
        committer.close()
        await committer.drain()
    }

    /// Whether a commit is running or queued. O(1).
    var isCommitting: Bool { committer.isCommitting }

    /// Observations waiting for the next group commit. O(waiting requests).
    var waitingCount: Int { committer.waiting }

    /// Feedback that passed ``check(model:_:)``: its observations and the rewards its event ids carry.
    private struct CheckedFeedback: Sendable {
        let model: ServedModel
        let observations: [Observation]
        /// The rewards, with the index of the observation each came with.
        let rewards: [(index: Int, version: Int, label: Float)]
    }

    /// Validates feedback and looks up its event ids; nothing is logged.
    private func check(model name: String, _ items: [Feedback]) throws -> CheckedFeedback {
        let model = try registry.model(name)
        let now = Date().timeIntervalSince1970
        var observations: [Observation] = []
        observations.reserveCapacity(items.count)
        var rewards: [(index: Int, version: Int, label: Float)] = []
        for (n, o) in items.enumerated() {
            let which = items.count > 1 ? "observation \(n): " : ""
            let label: Float
            do throws(InputRuleViolation) {
                try rules.check(id: o.uid, field: "uid")
                try rules.check(id: o.item, field: "item")
                if let id = o.eventId { try rules.check(id: id, field: "event_id") }
                if let id = o.observationId { try rules.check(id: id, field: "observation_id") }
                label = try rules.check(label: o.label)
            } catch {
                throw OspreyError(error, which)
            }
            var explored = false
            if let id = o.eventId {
                let decision: DecisionRecord?
                do { decision = try decisions.lookup(id) } catch {
                    throw OspreyError(.unavailable, "the decision log could not be read: \(error)")
                }
                guard let decision, decision.model == name else {
                    throw OspreyError(.unknownEvent, "\(which)event_id `\(id)` names no top-k answer of model `\(name)`")
                }
                guard decision.uid == o.uid else {
                    throw OspreyError(.unknownEvent, "\(which)event_id `\(id)` names no top-k answer to user `\(o.uid)` (it answered `\(decision.uid)`)")
                }
                explored = decision.shown(o.item)?.explored ?? false
                rewards.append((n, decision.version, label))
            }
            observations.append(Observation(model: name, uid: o.uid, item: o.item, label: label, time: now,
                                            eventId: o.eventId, answersExploration: explored, observationId: o.observationId))
        }
        // On a cluster node every user must be this node's; nothing is logged otherwise.
        for o in observations { try registry.claim(o.uid, of: model, learning: true) }
        // A cold user's state is read while the commit syncs, not in the learning step after it,
        // where every commit behind it would wait for the read (after a start, every user is cold).
        let users = model.current.users
        for o in observations {
            if let read = users.prefetch(o.uid) { readAhead.submit(read) }
        }
        return CheckedFeedback(model: model, observations: observations, rewards: rewards)
    }

    /// Learns a committed batch in log order and advances the learned sequence; hands the
    /// models it made stale to `onStale`. O(batch · d²).
    private static func learn(_ batch: [LoggedObservation], registry: ModelRegistry, progress: LearningProgress,
                              logger: Logger, onStale: @Sendable (ServedModel) -> Void) {
        var stale: [ServedModel] = [], learned: [ServedModel] = []
        progress.applied.withLock { last in
            for logged in batch {
                if let model = try? registry.model(logged.observation.model) {
                    if !learned.contains(where: { $0 === model }) { learned.append(model) }
                    do {
                        if try model.learn(logged) { stale.append(model) }
                    } catch {
                        // The observation is durable; the user stays cold and its next rebuild
                        // replays it from the log.
                        logger.error("could not rebuild a cold user's state; the observation is logged and will be learned at its next rebuild", metadata: [
                            "model.name": "\(model.name)", "user.uid": "\(logged.observation.uid)", "error": "\(error)",
                        ])
                    }
                }
                last = logged.seq
            }
        }
        progress.learned.add(batch.count, ordering: .relaxed)
        for model in learned { model.recordQuality() }
        for model in stale { onStale(model) }
    }

    /// A failed commit as the caller sees it.
    private func commitFailure(_ error: any Error) -> OspreyError {
        if let error = error as? OspreyError { return error }
        logger.error("observation commit failed", metadata: ["error": "\(error)"])
        return OspreyError(.unavailable, "the observation log could not commit: \(error)")
    }

    /// Credits committed feedback's rewards to the versions that made its decisions, except those
    /// of observations that were `duplicate`s (credited when first logged); returns the serving
    /// version.
    private func credit(_ checked: CheckedFeedback, skipping duplicate: [Bool]) -> Int {
        let model = checked.model
        model.countFeedback(checked.rewards.filter { !duplicate[$0.index] }.map { ($0.version, $0.label) })
        return model.version.number
    }
}
