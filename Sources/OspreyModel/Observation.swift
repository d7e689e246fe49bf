import Foundation

/// Feedback from the application (docs/architecture.md, "Vocabulary"): user `uid` gave `item` the label `label`.
public struct Observation: Sendable, Equatable {
    public var model: String
    public var uid: String
    public var item: String
    public var label: Float
    /// Seconds since the epoch when Osprey received it.
    public var time: Double
    /// The top-k decision (its `event_id`) this observation is feedback on, if any.
    public var eventId: String?
    /// True when the item was shown only because the policy explored (not in the greedy top-k of
    /// the decision `eventId` names). Known live, not stored: it feeds the quality monitor's
    /// exploration pool, which is soft state like the rest of the monitor.
    public var answersExploration: Bool
    /// The client's id for this observation, if it gave one: a retry with the same id is not
    /// logged again (``ObservationLog``'s append skips it). Not read back from the log.
    public var observationId: String?

    public init(model: String, uid: String, item: String, label: Float, time: Double = Date().timeIntervalSince1970,
                eventId: String? = nil, answersExploration: Bool = false, observationId: String? = nil) {
        self.model = model
        self.uid = uid
        self.item = item
        self.label = label
        self.time = time
        self.eventId = eventId
        self.answersExploration = answersExploration
        self.observationId = observationId
    }
}

/// An observation as the log holds it, with its position in the log.
public struct LoggedObservation: Sendable, Equatable {
    /// The log sequence number: observations are learned in this order, live and on replay.
    public var seq: Int64
    public var observation: Observation

    public init(seq: Int64, observation: Observation) {
        self.seq = seq
        self.observation = observation
    }
}
