import OspreyMath
import OspreyModel
import OspreyStorage

/// Off-policy evaluation over a model's own decision log (docs/architecture.md, "Exploration and the decision log"): the reward a target policy
/// (on the serving or another version) would have earned on the logged decisions, from the
/// rewards joined to them by `event_id`.
public struct PolicyEvaluation: Sendable {
    /// Decisions read from the log (the latest `limit`).
    public var decisions: Int
    /// Decisions used, and why the others were not.
    public var used: Int
    public var skipped: OffPolicyEvaluation.Skipped
    /// The logging policies' mean reward on the decisions used.
    public var loggedReward: Double?
    /// `(Σw)² / Σw²` of the importance weights: how many decisions the estimate is worth.
    public var effectiveSampleSize: Double?
    /// IPS, self-normalized IPS, doubly robust and direct method, each with a 95% interval.
    public var estimates: [OffPolicyEstimate]
    public var policy: ExplorationPolicy
    public var version: Int
    /// The posterior draws behind a stochastic target's propensities (the asked-for number,
    /// capped so one evaluation stays within ``ExplorationControl/maxEvaluationDraws``).
    public var samples = 0

    /// Evaluates `policy` run on `version` with users' states `states` (a user without one starts
    /// from the version's prior) on logged `records` joined with `feedback`. Decisions are
    /// evaluated on their first slot (see ``OffPolicyEvaluation/samples(decisions:features:target:targetStates:lambda:seed:expectedReward:)``):
    /// the chosen item must have been shown first, among logged candidates.
    /// O(n·(d² + N·d)) for n decisions of N candidates, times M draws for a Thompson target.
    public static func evaluate(
        _ records: [DecisionRecord], feedback: [String: DecisionFeedback], policy: ExplorationPolicy, version: ModelVersion,
        states: (String) -> RidgeState?, propensitySamples: Int = 64, seed: UInt64 = 1
    ) -> PolicyEvaluation {
        let logged = records.map { r in
            let f = feedback[r.eventId]
            return r.logged(chosen: f?.item, reward: f.map { Double($0.label) })
        }
        let features = version.features
        var targetStates: [String: RidgeState] = [:]
        for r in records where targetStates[r.uid] == nil {
            let own = states(r.uid).flatMap { $0.stride == features.stride ? $0 : nil }
            targetStates[r.uid] = own ?? RidgeState(prior: version.prior, lambda: version.lambda)
        }
        let data = OffPolicyEvaluation.samples(
            decisions: logged, features: features,
            target: ExplorationSelector(policy: policy, propensitySamples: max(1, propensitySamples)),
            targetStates: targetStates, lambda: version.lambda, seed: seed)
        let s = data.samples
        var result = PolicyEvaluation(decisions: records.count, used: s.count, skipped: data.skipped, loggedReward: nil,
                                      effectiveSampleSize: nil, estimates: [], policy: policy, version: version.number,
                                      samples: max(1, propensitySamples))
        guard s.count > 1 else { return result }
        result.loggedReward = s.reduce(0) { $0 + $1.reward } / Double(s.count)
        let weights = s.map(\.weight)
        let squares = weights.reduce(0) { $0 + $1 * $1 }
        if squares > 0 { result.effectiveSampleSize = weights.reduce(0, +) * weights.reduce(0, +) / squares }
        result.estimates = [
            OffPolicyEvaluation.ips(s), OffPolicyEvaluation.selfNormalizedIPS(s),
            OffPolicyEvaluation.doublyRobust(s), OffPolicyEvaluation.directMethod(s),
        ]
        return result
    }
}
