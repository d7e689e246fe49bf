import Foundation
import OspreyMath
import OspreyModel
import OspreyStorage

/// Top-k answers under the model's exploration policy (Velox §5 "bandits"; docs/architecture.md, "Exploration and the decision log"), each
/// logged in the ``DecisionLog`` under a fresh `event_id` with every shown item's propensity.
///
/// - A greedy answer (the policy is `greedy`, or the request says `explore: false`) is the
///   ``Predictor`` ranking, from the prediction cache when it can be; propensity 1.
/// - An exploring answer chooses among the request's `items` or, for the whole catalogue, among a
///   greedy shortlist of its best ``Configuration/shortlist`` items (at least 2k): LinUCB and
///   Thompson cost O(d²) per candidate, and an item far down the greedy ranking is rarely worth
///   showing. The candidates are logged with the decision, so off-policy evaluation knows what
///   the policy chose from. Exploring answers are never cached: they are random by design.
public struct Explorer: Sendable {
    /// Settings.
    public struct Configuration: Sendable {
        /// Greedy candidates an exploring whole-catalogue answer chooses among (at least 2k).
        public var shortlist: Int
        /// Posterior draws behind a Thompson answer's propensities (0: none reported).
        public var propensitySamples: Int
        /// Log decisions and give answers an `event_id` (off: neither).
        public var logDecisions: Bool
        /// Which logged decisions are kept; older ones are deleted while the server runs.
        public var decisionRetention: DecisionLog.Retention

        public init(shortlist: Int = 100, propensitySamples: Int = 64, logDecisions: Bool = true,
                    decisionRetention: DecisionLog.Retention = .init()) {
            precondition(shortlist >= 1 && propensitySamples >= 0)
            self.shortlist = shortlist
            self.propensitySamples = propensitySamples
            self.logDecisions = logDecisions
            self.decisionRetention = decisionRetention
        }
    }

    /// An answer: the shown items in order, the version and policy that chose them, and the
    /// event id feedback names (nil when decisions are not logged).
    public struct Answer: Sendable {
        public var items: [DecisionRecord.Shown]
        public var version: Int
        public var policy: ExplorationPolicy
        public var eventId: String?
    }

    let registry: ModelRegistry
    let log: DecisionLog
    public let configuration: Configuration

    /// The `k` items to show `uid`, chosen by the model's policy unless `explore` is false, with
    /// the same candidates and filters as ``Predictor/topK(model:uid:k:items:exclude:excludeObserved:)``.
    /// `inline` items (the request's attributes for items the model does not hold) are ranked
    /// among them, scored from their attributes and not stored (``Predictor/mergeInline(_:_:k:exclude:uid:in:)``);
    /// an answer with them is greedy whatever the model's policy (logged as `greedy`, so
    /// off-policy evaluation reads it as such).
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownItem` or `invalidArgument` (k < 1).
    public func topK(model name: String, uid: String, k: Int, items: [String]?, exclude: [String] = [],
                     excludeObserved: Bool = false, explore: Bool? = nil,
                     inline: [(id: String, attributes: ItemAttributes)] = []) throws -> Answer {
        guard k >= 1 else { throw OspreyError(.invalidArgument, "k must be at least 1") }
        let model = try registry.model(name)
        try registry.claim(uid, of: model)
        let state = model.state(for: uid)
        // Inline items are ranked greedily only; whether a request may name them cannot depend
        // on the policy an operator set.
        let policy = explore == false || !inline.isEmpty ? .greedy : model.exploration
        let event = configuration.logDecisions ? log.nextEventID() : nil
        let query = PredictionCache.RankingQuery(k: k, items: items, exclude: exclude, excludeObserved: excludeObserved)
        let shown: [DecisionRecord.Shown]
        var candidates: [String]?
        if policy.explores {
            let seed = (event?.number ?? UInt64.random(in: 0...UInt64.max)) ^ 0x0E8A_7D1C_5B39_F4A2
            (shown, candidates) = try Self.explore(query, uid: uid, policy: policy, in: state, configuration: configuration, seed: seed)
        } else {
            guard case .ranking(var ranked) = try Predictor.answer(.ranking(query), uid: uid, in: state) else {
                preconditionFailure("a ranking query is answered with a ranking")
            }
            let added = Predictor.newInline(inline, exclude: exclude, in: state)
            if !added.isEmpty { ranked = Predictor.mergeInline(ranked, added, k: k, uid: uid, in: state) }
            shown = ranked.map { DecisionRecord.Shown(item: $0.item, score: $0.score, propensity: 1) }
            if event != nil, let items {
                let features = state.features
                candidates = try Predictor.candidateRows(query, items: items, uid: uid, in: state).map { features.id(of: $0) }
                    + added.map(\.id)
            }
        }
        if let event {
            log.append(DecisionRecord(
                eventId: event.id, model: name, version: state.version.number, uid: uid, policy: policy.description,
                time: Date().timeIntervalSince1970, items: shown, candidates: candidates))
            model.countDecision(version: state.version.number)
        }
        return Answer(items: shown, version: state.version.number, policy: policy, eventId: event?.id)
    }

    /// An exploring choice: the candidates (the request's items, or the greedy shortlist), the
    /// user's ridge state (the version's prior for a user never seen), and the selector.
    static func explore(_ q: PredictionCache.RankingQuery, uid: String, policy: ExplorationPolicy, in state: ServingState,
                        configuration: Configuration, seed: UInt64) throws -> ([DecisionRecord.Shown], [String]) {
        let v = state.version
        let features = state.features
        let ridge: RidgeState
        switch policy {
        case .linUCB, .thompson:
            // LinUCB and Thompson read A⁻¹ and A: the full state (a cold user's is rebuilt, not promoted).
            ridge = try state.users.fullState(uid).flatMap { $0.ridge.stride == features.stride ? $0.ridge : nil }
                ?? RidgeState(prior: v.prior, lambda: v.lambda)
        case .greedy, .epsilonGreedy:
            // Only w: from the cold tier, as a state whose weights are w (no rebuild).
            let w = state.users.read(uid) { view -> [Float]? in
                view.map { Array(UnsafeBufferPointer(start: $0.weights, count: v.dimension)) }
            }
            ridge = RidgeState(prior: w ?? v.prior, lambda: v.lambda)
        }
        // The candidates, and what the greedy ranking would show of them (an item outside it is
        // shown by exploration): the shortlist is ranked already, best first.
        let rows: [Int], greedy: Set<Int>
        if let items = q.items {
            rows = try Predictor.candidateRows(q, items: items, uid: uid, in: state)
            greedy = Set(ExplorationSelector.ranking(
                ExplorationSelector.scores(candidates: rows, weights: ridge.weights, features: features), k: q.k).map { rows[$0] })
        } else {
            var wide = q
            wide.k = max(configuration.shortlist, 2 * q.k)
            rows = try ridge.weights.withUnsafeBufferPointer { w in
                try Predictor.rankRows(wide, uid: uid, weights: w.baseAddress!, in: state).map(\.index)
            }
            greedy = Set(rows.prefix(q.k))
        }
        var rng = SplitMix64(seed: seed)
        let chosen = ExplorationSelector(policy: policy, propensitySamples: configuration.propensitySamples)
            .select(k: q.k, candidates: rows, ridge: ridge, features: features, using: &rng)
        let shown = chosen.map {
            DecisionRecord.Shown(item: features.id(of: $0.row), score: $0.score, exploring: $0.exploring, propensity: $0.propensity,
                                 explored: !greedy.contains($0.row))
        }
        return (shown, rows.map { features.id(of: $0) })
    }
}
