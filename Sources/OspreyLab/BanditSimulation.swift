import OspreyMath
import OspreyModel

/// Runs one exploration policy through a ``BanditWorld``: each round the arriving user's
/// candidates are ranked by ``ExplorationSelector`` from the user's ridge state, one item is
/// shown, its reward observed and learned with the same Sherman–Morrison update the server runs
/// (``UserWeights/learn(features:target:)``, target = reward − offset). Every user starts from the
/// prior `w = 0` with penalty λ (a bootstrapped user of a world whose mean taste is 0).
///
/// Regret of a round = the best candidate's expected reward − the shown item's (pseudo-regret:
/// noise-free). Cost per round: the selector's (O(N·d²) for LinUCB) plus O(d²) for the update
/// and O(d²) for the diagnostics; O(users · items · d) at the end for ``Result/ratingError``.
public struct BanditSimulation: Sendable {
    /// What one policy did over the rounds.
    public struct Result: Sendable {
        /// The policy that ran.
        public var policy: ExplorationPolicy
        /// Cumulative regret after each round (index t: after round t + 1).
        public var cumulativeRegret: [Double]
        /// Mean regret per round over the last tenth of the rounds: flat for a policy that
        /// still learns, stuck above 0 for one trapped by its own choices.
        public var lateRegretPerRound: Double
        /// Share of the last tenth of the rounds that showed the best candidate.
        public var lateBestShare: Double
        /// Of the rounds that missed the best candidate, the share in which the model was less
        /// sure about the best candidate than about the shown one (a wider confidence interval
        /// `sqrt(fᵀA⁻¹f)`): the item was passed over because it lay in a direction the user's
        /// weights had not learned — greedy's feedback loop.
        public var missedUnexplored: Double
        /// At the end, the RMS error of the learned scores against the true ratings over every
        /// (user who arrived, item) pair: how well the policy's choices taught it each user's
        /// tastes over the whole catalogue, not only where it looked.
        public var ratingError: Double
        /// The share of rounds that showed something other than the greedy choice (the current
        /// best score).
        public var exploredShare: Double

        /// Total regret after all rounds.
        public var totalRegret: Double { cumulativeRegret.last ?? 0 }
    }

    /// The world the rounds come from (its true tastes score every choice).
    public let world: BanditWorld
    /// The rounds every policy is run through, in order.
    public let rounds: [BanditWorld.Round]
    /// The ridge penalty of each user's online regression.
    public var lambda: Float

    /// A simulation of `rounds` of `world`, each user learning with ridge penalty `lambda`. O(1):
    /// nothing runs until ``run(policy:seed:propensitySamples:log:)``.
    public init(world: BanditWorld, rounds: [BanditWorld.Round], lambda: Float = 1) {
        self.world = world
        self.rounds = rounds
        self.lambda = lambda
    }

    /// Runs `policy` over all rounds with exploration randomness from `seed`. `log`, when given,
    /// receives each decision (Thompson propensities then use `propensitySamples` draws).
    /// Returns the result and each user's final state (nil for users who never arrived).
    public func run(
        policy: ExplorationPolicy, seed: UInt64, propensitySamples: Int = ExplorationSelector.defaultPropensitySamples,
        log: ((LoggedDecision) -> Void)? = nil
    ) -> (result: Result, users: [UserWeights?]) {
        let features = world.features
        let prior = [Float](repeating: 0, count: features.dimension)
        let selector = ExplorationSelector(policy: policy, propensitySamples: log == nil ? 0 : propensitySamples)
        var rng = SplitMix64(seed: seed)
        var users = [UserWeights?](repeating: nil, count: world.configuration.users)
        var cumulative: [Double] = []
        cumulative.reserveCapacity(rounds.count)
        var total = 0.0, late = 0.0, lateBest = 0, missed = 0, missedUnexplored = 0, explored = 0
        let lateStart = rounds.count - max(1, rounds.count / 10)
        for (t, round) in rounds.enumerated() {
            var user = users[round.user] ?? UserWeights(ridge: RidgeState(prior: prior, lambda: lambda), bootstrapped: true)
            let shown = selector.select(k: 1, candidates: round.candidates, ridge: user.ridge, features: features, using: &rng)[0]
            // Truth and diagnostics, before learning.
            var best = round.candidates[0], bestReward = -Double.infinity
            var greedy = round.candidates[0], greedyScore = -Float.infinity
            for item in round.candidates {
                let r = world.expectedReward(user: round.user, item: item)
                if r > bestReward { bestReward = r; best = item }
                let s = user.ridge.weights.withUnsafeBufferPointer { features.score(weights: $0.baseAddress!, item: item) }
                if s > greedyScore { greedyScore = s; greedy = item }
            }
            if shown.row != greedy { explored += 1 }
            let expected = world.expectedReward(user: round.user, item: shown.row)
            let regret = bestReward - expected
            total += regret
            cumulative.append(total)
            if t >= lateStart {
                late += regret
                if shown.row == best { lateBest += 1 }
            }
            if shown.row != best {
                missed += 1
                let widthBest = features.withFeatures(item: best) { f, _ in ExplorationSelector.confidenceWidth(f, ridge: user.ridge) }
                let widthShown = features.withFeatures(item: shown.row) { f, _ in ExplorationSelector.confidenceWidth(f, ridge: user.ridge) }
                if widthBest > widthShown { missedUnexplored += 1 }
            }
            let reward = expected + round.noise
            _ = features.withFeatures(item: shown.row) { f, offset in
                user.learn(features: f, target: Float(reward) - offset)
            }
            users[round.user] = user
            if let log {
                let ids = features.catalog.ids
                log(LoggedDecision(
                    eventId: "sim-\(t + 1)", uid: "u\(round.user)", policy: policy.description,
                    items: [.init(item: ids[shown.row], score: shown.score, propensity: shown.propensity)],
                    candidates: round.candidates.map { ids[$0] }, chosen: ids[shown.row], reward: reward))
            }
        }
        var squared = 0.0, pairs = 0
        for (u, state) in users.enumerated() {
            guard let state else { continue }
            state.ridge.weights.withUnsafeBufferPointer { w in
                for item in 0..<features.catalog.count {
                    let e = Double(features.score(weights: w.baseAddress!, item: item)) - world.expectedReward(user: u, item: item)
                    squared += e * e
                }
            }
            pairs += features.catalog.count
        }
        let lateCount = rounds.count - lateStart
        let result = Result(
            policy: policy, cumulativeRegret: cumulative,
            lateRegretPerRound: lateCount > 0 ? late / Double(lateCount) : 0,
            lateBestShare: lateCount > 0 ? Double(lateBest) / Double(lateCount) : 0,
            missedUnexplored: missed > 0 ? Double(missedUnexplored) / Double(missed) : 0,
            ratingError: pairs > 0 ? (squared / Double(pairs)).squareRoot() : 0,
            exploredShare: rounds.isEmpty ? 0 : Double(explored) / Double(rounds.count))
        return (result, users)
    }
}
