import OspreyMath

/// One logged decision reduced to what the off-policy estimators need: the logging policy's
/// propensity of the action it took, the target policy's probability of that same action, the
/// observed reward, and a reward model's predictions (for doubly robust).
public struct OffPolicySample: Sendable, Equatable {
    /// `μ(a_t | x_t)`: the logging policy's probability of the logged action (> 0).
    public var loggingPropensity: Double
    /// `π(a_t | x_t)`: the target policy's probability of the logged action.
    public var targetProbability: Double
    public var reward: Double
    /// `r̂(x_t, a_t)`: the reward model's prediction for the logged action.
    public var predictedReward: Double
    /// `Σ_a π(a | x_t) r̂(x_t, a)`: the target's value under the reward model (direct method).
    public var predictedValue: Double

    public init(loggingPropensity: Double, targetProbability: Double, reward: Double, predictedReward: Double = 0,
                predictedValue: Double = 0) {
        self.loggingPropensity = loggingPropensity
        self.targetProbability = targetProbability
        self.reward = reward
        self.predictedReward = predictedReward
        self.predictedValue = predictedValue
    }

    /// The importance weight `π(a_t|x_t) / μ(a_t|x_t)`.
    public var weight: Double { targetProbability / loggingPropensity }
}

/// An estimate of a target policy's value (mean reward per decision) with a confidence interval.
public struct OffPolicyEstimate: Sendable, Equatable {
    /// `ips`, `snips`, `dr` or `dm`.
    public var estimator: String
    public var value: Double
    public var standardError: Double
    public var lower: Double
    public var upper: Double
    /// Decisions used.
    public var count: Int

    public func contains(_ x: Double) -> Bool { lower <= x && x <= upper }
}

/// Off-policy evaluation (docs/operations.md, "Off-policy evaluation"): how much reward a target policy would have earned, estimated
/// from decisions logged under another policy with known propensities (Dudík, Langford & Li,
/// "Doubly Robust Policy Evaluation and Learning", ICML 2011).
///
/// With importance weights `w_t = π(a_t|x_t) / μ(a_t|x_t)`:
/// - IPS: `mean(w_t r_t)` — unbiased when every action π may take had μ > 0; high variance.
/// - Self-normalized IPS: `Σ w_t r_t / Σ w_t` — slightly biased, usually much lower variance.
/// - Doubly robust: `mean(Σ_a π(a|x_t) r̂(x_t,a) + w_t (r_t − r̂(x_t,a_t)))` — unbiased if either
///   the propensities or the reward model are right; lower variance than IPS when r̂ is good.
/// - Direct method (`dm`): `mean(Σ_a π(a|x_t) r̂(x_t,a))`, for reference: biased by r̂'s errors.
///
/// Confidence intervals are normal approximations, `value ± z·SE` (z = 1.96 for 95%), with the SE
/// of a mean of i.i.d. terms for IPS, DR and DM and the delta method for SNIPS (influence terms
/// `w_t (r_t − V̂) / mean(w)`). ``bootstrap(_:estimator:resamples:level:seed:)`` gives
/// percentile intervals instead. The decisions of an online-learning logger are not i.i.d.
/// (the policy changes as it learns), but with propensities recorded per decision the terms are
/// martingale differences and the same normal approximation holds asymptotically.
/// Cost: O(n) per estimate, O(B·n) for a bootstrap with B resamples.
public enum OffPolicyEvaluation {
    /// Inverse propensity scoring.
    public static func ips(_ samples: [OffPolicySample], z: Double = 1.96) -> OffPolicyEstimate {
        meanEstimate("ips", samples.map { $0.weight * $0.reward }, z: z)
    }

    /// Self-normalized inverse propensity scoring, with a delta-method interval.
    public static func selfNormalizedIPS(_ samples: [OffPolicySample], z: Double = 1.96) -> OffPolicyEstimate {
        let n = Double(samples.count)
        let weightSum = samples.reduce(0) { $0 + $1.weight }
        guard samples.count > 1, weightSum > 0 else {
            return OffPolicyEstimate(estimator: "snips", value: .nan, standardError: .nan, lower: .nan, upper: .nan, count: samples.count)
        }
        let value = samples.reduce(0) { $0 + $1.weight * $1.reward } / weightSum
        let meanWeight = weightSum / n
        let influence = samples.map { $0.weight * ($0.reward - value) / meanWeight }
        let se = (variance(influence) / n).squareRoot()
        return OffPolicyEstimate(estimator: "snips", value: value, standardError: se, lower: value - z * se,
                                 upper: value + z * se, count: samples.count)
    }

    /// Doubly robust.
    public static func doublyRobust(_ samples: [OffPolicySample], z: Double = 1.96) -> OffPolicyEstimate {
        meanEstimate("dr", samples.map { $0.predictedValue + $0.weight * ($0.reward - $0.predictedReward) }, z: z)
    }

    /// The direct method: the reward model's value of the target policy.
    public static func directMethod(_ samples: [OffPolicySample], z: Double = 1.96) -> OffPolicyEstimate {
        meanEstimate("dm", samples.map(\.predictedValue), z: z)
    }

    /// All four estimates, in the order IPS, SNIPS, DR, DM.
    public static func all(_ samples: [OffPolicySample], z: Double = 1.96) -> [OffPolicyEstimate] {
        [ips(samples, z: z), selfNormalizedIPS(samples, z: z), doublyRobust(samples, z: z), directMethod(samples, z: z)]
    }

    /// A percentile bootstrap interval of `estimator` at `level` (e.g. 0.95) from `resamples`
    /// resamples of the decisions with replacement, deterministic per `seed`. O(resamples · n).
    public static func bootstrap(
        _ samples: [OffPolicySample], estimator: ([OffPolicySample]) -> OffPolicyEstimate, resamples: Int = 200,
        level: Double = 0.95, seed: UInt64 = 1
    ) -> (lower: Double, upper: Double) {
        guard !samples.isEmpty, resamples > 1 else { return (.nan, .nan) }
        var rng = SplitMix64(seed: seed)
        var values: [Double] = []
        values.reserveCapacity(resamples)
        var resample = samples
        for _ in 0..<resamples {
            for i in 0..<samples.count { resample[i] = samples[Int(rng.next() % UInt64(samples.count))] }
            values.append(estimator(resample).value)
        }
        values.sort()
        let tail = (1 - level) / 2
        let lo = values[min(values.count - 1, Int((tail * Double(values.count)).rounded(.down)))]
        let hi = values[min(values.count - 1, Int(((1 - tail) * Double(values.count)).rounded(.up)) - 1)]
        return (lo, hi)
    }

    static func meanEstimate(_ name: String, _ terms: [Double], z: Double) -> OffPolicyEstimate {
        let n = Double(terms.count)
        guard terms.count > 1 else {
            let v = terms.first ?? .nan
            return OffPolicyEstimate(estimator: name, value: v, standardError: .nan, lower: .nan, upper: .nan, count: terms.count)
        }
        let value = terms.reduce(0, +) / n
        let se = (variance(terms) / n).squareRoot()
        return OffPolicyEstimate(estimator: name, value: value, standardError: se, lower: value - z * se,
                                 upper: value + z * se, count: terms.count)
    }

    /// The unbiased sample variance. O(n).
    static func variance(_ x: [Double]) -> Double {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        return x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
    }
}
