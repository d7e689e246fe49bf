import OspreyModel

/// One top-k answer as the decision log keeps it (docs/architecture.md, exploration): who was served by which version and
/// policy, what was shown with each item's propensity, and what the policy chose from. Joined
/// with the observations that carry its `eventId`, it becomes a ``LoggedDecision`` for
/// off-policy evaluation.
public struct DecisionRecord: Sendable, Equatable {
    /// One shown item, in display order.
    public struct Shown: Sendable, Equatable {
        public var item: String
        /// The model's estimate `offset + w_u · f(x)`.
        public var score: Float
        /// The upper confidence bound (LinUCB) or sampled score (Thompson) it was ranked by.
        public var exploring: Float?
        /// The policy's probability of showing this item at this position.
        public var propensity: Double?
        /// True when the item is not in the greedy top-k: it is shown because the policy explored.
        public var explored: Bool

        public init(item: String, score: Float, exploring: Float? = nil, propensity: Double?, explored: Bool = false) {
            self.item = item
            self.score = score
            self.exploring = exploring
            self.propensity = propensity
            self.explored = explored
        }
    }

    public var eventId: String
    public var model: String
    public var version: Int
    public var uid: String
    /// The policy in its API form, e.g. `linucb(1.0)`.
    public var policy: String
    /// Seconds since the epoch.
    public var time: Double
    public var items: [Shown]
    /// The items the policy chose from; nil for the whole catalogue (a greedy ranking of it).
    public var candidates: [String]?

    public init(eventId: String, model: String, version: Int, uid: String, policy: String, time: Double,
                items: [Shown], candidates: [String]?) {
        self.eventId = eventId
        self.model = model
        self.version = version
        self.uid = uid
        self.policy = policy
        self.time = time
        self.items = items
        self.candidates = candidates
    }

    /// The shown item named `item`, if it was shown.
    public func shown(_ item: String) -> Shown? { items.first { $0.item == item } }

    /// The decision with its feedback, as the off-policy estimators read it.
    public func logged(chosen: String?, reward: Double?) -> LoggedDecision {
        LoggedDecision(
            eventId: eventId, uid: uid, policy: policy,
            items: items.map { .init(item: $0.item, score: $0.score, propensity: $0.propensity) },
            candidates: candidates, chosen: chosen, reward: reward)
    }
}

/// Feedback on a logged decision: the first observation carrying its event id.
public struct DecisionFeedback: Sendable, Equatable {
    public var item: String
    public var label: Float
    public var seq: Int64

    public init(item: String, label: Float, seq: Int64) {
        self.item = item
        self.label = label
        self.seq = seq
    }
}
