import Dispatch
import Foundation
import OspreyModel
import OspreyStorage

/// Competing versions (issue 5, Velox §5 "multiple models"): a challenger serves beside the
/// serving version (the champion), learning every observation as the champion does; users are
/// allocated between the two by a fixed split or a Thompson-sampling bandit over each version's
/// reward (feedback joined to its top-k decisions by `event_id`), sticky per user; `promote`
/// makes the challenger the serving version.
extension Manager {
    /// Starts a competition: version `number` (any stored version but the serving one) serves
    /// the users `allocation` gives it, with its own user weights to which every observation
    /// logged since they were saved is applied first (as a rollback does).
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownVersion`, `conflict` for the serving
    ///   version or while another competition runs.
    public func startCompetition(model name: String, challenger number: Int, allocation: TrafficAllocation) throws {
        let model = try registry.model(name)
        guard model.competition == nil else {
            throw OspreyError(.conflict, "model `\(name)` already has a challenger; promote it or stop the competition first")
        }
        guard number != model.version.number else {
            throw OspreyError(.conflict, "version \(number) is the serving version; a challenger must be another one")
        }
        guard try store.versions(model: name).contains(where: { $0.number == number }) else {
            throw OspreyError(.unknownVersion, "model `\(name)` has no version \(number); GET /v1/models/\(name) lists them")
        }
        let through = applied.withLock { $0 }
        let (state, replayed) = try ServingState.restore(
            model: name, version: number, store: store, through: through, monitor: configuration.monitor,
            predictions: PredictionCache(configuration: configuration.predictionCache), features: configuration.featureCache,
            featureStatistics: model.featureStatistics, hotUsers: configuration.hotUsers,
            observed: model.current.observed)
        try installChallenger(state, in: model, caughtUpThrough: max(replayed, through), allocation: allocation)
    }

    /// ``startCompetition(model:challenger:allocation:)`` on a dispatch queue (it reads the store
    /// and replays the log).
    public func startCompetitionInBackground(model name: String, challenger number: Int, allocation: TrafficAllocation) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(with: Result { try self.startCompetition(model: name, challenger: number, allocation: allocation) })
            }
        }
    }

    /// Attaches `state` as the model's challenger. It has learned the log up to `seq`; the rest
    /// is learned as in an install, the tail under the learning lock, so that from the moment it
    /// competes it has missed no observation and learns every later one.
    func installChallenger(_ state: ServingState, in model: ServedModel, caughtUpThrough seq: Int64,
                           allocation: TrafficAllocation) throws {
        let caught = try state.replay(store: store, after: seq, through: applied.withLock { $0 })
        let since = Date().timeIntervalSince1970
        try applied.withLock { last in
            try state.replay(store: store, after: max(seq, caught), through: last)
            guard model.competition == nil else {
                throw OspreyError(.conflict, "model `\(model.name)` already has a challenger; promote it or stop the competition first")
            }
            try store.setCompetition(model: model.name, CompetitionRecord(
                challenger: state.version.number, allocation: allocation.description, since: since))
            model.competition = Competition(challenger: state, allocation: allocation, since: since,
                                            persist: Self.persistAssignment(model: model.name, since: since, decisions))
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
        try applied.withLock { _ in
            guard let competition = model.competition else {
                throw OspreyError(.conflict, "model `\(name)` has no challenger")
            }
            try store.setCompetition(model: name, nil)
            model.competition = nil
            logger.info("competition stopped", metadata: [
                "model.name": "\(name)", "challenger": "\(competition.challenger.version.number)",
            ])
        }
    }

    /// Makes the challenger the serving version (with the weights it learned while competing)
    /// and ends the competition. Returns its number.
    /// - Throws: ``OspreyError`` `unknownModel`, or `conflict` when there is no challenger.
    @discardableResult
    public func promote(model name: String) throws -> Int {
        let model = try registry.model(name)
        return try applied.withLock { _ in
            guard let competition = model.competition else {
                throw OspreyError(.conflict, "model `\(name)` has no challenger to promote")
            }
            let state = competition.challenger
            try store.promoteChallenger(model: name, version: state.version.number)
            model.swap(to: state)
            model.competition = nil
            logger.info("challenger promoted", metadata: ["model.name": "\(name)", "model.version": "\(state.version.number)"])
            return state.version.number
        }
    }

    /// The competition stored for a model, restored at startup: the challenger's state from its
    /// snapshot and the log, its users' assignments, and each version's reward from the
    /// decisions logged since it started joined with their feedback.
    static func restoreCompetition(_ record: CompetitionRecord, of model: ServedModel, store: SQLiteStore,
                                   decisions: DecisionLog, configuration: Configuration) throws -> Competition {
        let allocation = try TrafficAllocation.parse(record.allocation)
        let (state, _) = try ServingState.restore(
            model: model.name, version: record.challenger, store: store, monitor: configuration.monitor,
            predictions: PredictionCache(configuration: configuration.predictionCache), features: configuration.featureCache,
            featureStatistics: model.featureStatistics, hotUsers: configuration.hotUsers,
            observed: model.current.observed)
        let assigned = if case .thompson = allocation { try store.assignments(model: model.name, since: record.since) } else { [String: Int]() }
        let competition = Competition(challenger: state, allocation: allocation, since: record.since, assigned: assigned,
                                      persist: persistAssignment(model: model.name, since: record.since, decisions))
        let versions = try store.decisionVersions(model: model.name, since: record.since)
        for version in versions.values { competition.countDecision(version: version) }
        for (id, feedback) in try store.feedback(model: model.name) {
            if let version = versions[id] { competition.record(version: version, reward: Double(feedback.label)) }
        }
        return competition
    }

    static func persistAssignment(model: String, since: Double, _ decisions: DecisionLog) -> @Sendable (String, Int) -> Void {
        { uid, version in decisions.append(Assignment(model: model, since: since, uid: uid, version: version)) }
    }
}
