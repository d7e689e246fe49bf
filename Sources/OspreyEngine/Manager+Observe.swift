import Foundation
import OspreyModel
import OspreyStorage

/// Observations as clients send them (DESIGN.md §6): checked, handed to the group commit, and
/// acknowledged once durable and learned.
extension Manager {
    /// Logs observations durably and learns them; returns the serving version once they are.
    /// All or none: one bad observation rejects the whole call before anything is logged.
    /// - Throws: ``OspreyError`` `unknownModel` or `invalidArgument`; `unavailable` when the log
    ///   cannot commit.
    @discardableResult
    public func observe(model name: String, _ items: [(uid: String, item: String, label: Float)]) async throws -> Int {
        try await observe(model: name, items.map { Feedback(uid: $0.uid, item: $0.item, label: $0.label) })
    }

    /// One observation as a client sends it: `eventId` names the top-k answer it is feedback on.
    public struct Feedback: Sendable {
        public var uid: String
        public var item: String
        public var label: Float
        public var eventId: String?

        public init(uid: String, item: String, label: Float, eventId: String? = nil) {
            self.uid = uid
            self.item = item
            self.label = label
            self.eventId = eventId
        }
    }

    /// Logs observations durably and learns them, as the tuple form does; an
    /// observation with an event id must name a logged decision of this model for this user, and
    /// one answering an item the decision showed by exploring feeds the exploration pool.
    /// - Throws: ``OspreyError`` `unknownModel`, `invalidArgument`, `unknownEvent` for an event id
    ///   that is unknown or another user's; `unavailable` when the log cannot commit.
    @discardableResult
    public func observe(model name: String, _ items: [Feedback]) async throws -> Int {
        let checked = try check(model: name, items)
        guard !checked.observations.isEmpty else { return checked.model.version.number }
        do {
            try await groupCommitter.submit(checked.observations)
        } catch {
            throw commitFailure(error)
        }
        return learned(checked)
    }

    /// ``observe(model:_:)-(_,[Feedback])`` for a caller that must not suspend (the server's
    /// event loops): checks the feedback now, throwing what that would throw before anything is
    /// logged, then calls `completion` once the observations are durable and learned, with the
    /// serving version, or with `unavailable` when the log cannot commit. `completion` runs on the
    /// group-commit queue and must be quick. Checking an event id reads the decision log.
    public func observe(
        model name: String, _ items: [Feedback], completion: @escaping @Sendable (Result<Int, OspreyError>) -> Void
    ) throws {
        let checked = try check(model: name, items)
        guard !checked.observations.isEmpty else { return completion(.success(checked.model.version.number)) }
        groupCommitter.submit(checked.observations) { error in
            if let error {
                completion(.failure(self.commitFailure(error)))
            } else {
                completion(.success(self.learned(checked)))
            }
        }
    }

    /// Feedback that passed ``check(model:_:)``: its observations and the rewards its event ids carry.
    private struct CheckedFeedback: Sendable {
        let model: ServedModel
        let observations: [Observation]
        let rewards: [(version: Int, label: Float)]
    }

    /// Validates feedback and looks up its event ids; nothing is logged.
    private func check(model name: String, _ items: [Feedback]) throws -> CheckedFeedback {
        let model = try registry.model(name)
        let now = Date().timeIntervalSince1970
        var observations: [Observation] = []
        observations.reserveCapacity(items.count)
        var rewards: [(version: Int, label: Float)] = []
        for (n, o) in items.enumerated() {
            let which = items.count > 1 ? "observation \(n): " : ""
            try validate(id: o.uid, "uid", which)
            try validate(id: o.item, "item", which)
            guard o.label.isFinite else {
                throw OspreyError(.invalidArgument, "\(which)label must be a finite number")
            }
            var explored = false
            if let id = o.eventId {
                try validate(id: id, "event_id", which)
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
                rewards.append((decision.version, o.label))
            }
            observations.append(Observation(model: name, uid: o.uid, item: o.item, label: o.label, time: now,
                                            eventId: o.eventId, answersExploration: explored))
        }
        // A cold user's state is read while the commit syncs, not in the learning step after it,
        // where every commit behind it would wait for the read (after a start, every user is cold).
        let users = model.current.users
        for o in observations {
            if let read = users.prefetch(o.uid) { WorkerPool.readAhead.submit(read) }
        }
        return CheckedFeedback(model: model, observations: observations, rewards: rewards)
    }

    /// A failed commit as the caller sees it.
    private func commitFailure(_ error: any Error) -> OspreyError {
        if let error = error as? OspreyError { return error }
        logger.error("observation commit failed", metadata: ["error": "\(error)"])
        return OspreyError(.unavailable, "the observation log could not commit: \(error)")
    }

    /// Credits committed feedback's rewards to the versions that made its decisions; returns the
    /// serving version.
    private func learned(_ checked: CheckedFeedback) -> Int {
        let model = checked.model
        if !checked.rewards.isEmpty {
            model.feedbackCount.add(checked.rewards.count, ordering: .relaxed)
            if let competition = model.competition {
                for r in checked.rewards { competition.record(version: r.version, reward: Double(r.label)) }
            }
        }
        return model.version.number
    }

    private func validate(id: String, _ field: String, _ which: String) throws {
        guard !id.isEmpty else { throw OspreyError(.invalidArgument, "\(which)\(field) must not be empty") }
        // NUL is reserved: a retrain window names its stand-in users with it.
        guard !id.utf8.contains(0) else { throw OspreyError(.invalidArgument, "\(which)\(field) must not contain NUL") }
        // Counted in code points, as openapi.yaml's maxLength counts; a string of at most that
        // many UTF-8 bytes has no more code points, so the count is skipped for it.
        let limit = configuration.maxIdentifierLength
        guard id.utf8.count <= limit || id.unicodeScalars.count <= limit else {
            throw OspreyError(.invalidArgument, "\(which)\(field) is longer than \(limit) characters")
        }
    }
}
