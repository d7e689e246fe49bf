import OspreyMath

extension OffPolicyEvaluation {
    /// A decision that can be evaluated, with its items as catalogue rows.
    struct UsableDecision { var uid: String; var candidates: [Int]; var chosen: Int; var position: Int; var propensity: Double; var reward: Double }

    /// What was left out of an evaluation, and why.
    public struct Skipped: Sendable, Equatable {
        /// Decisions with no reward, no chosen item, or a chosen item that was not shown first.
        public var noFeedback = 0
        /// Decisions whose chosen item has no logged propensity, or one that is not in (0, 1].
        public var noPropensity = 0
        /// Decisions naming an item or candidate the model does not know.
        public var unknownItem = 0
        /// Decisions without a candidate list (the whole catalogue is not evaluated here).
        public var noCandidates = 0

        public var total: Int { noFeedback + noPropensity + unknownItem + noCandidates }
    }

    /// Turns logged decisions into estimator samples for a target policy (`target`) run on a
    /// fixed model (`features` and each user's ridge state in `targetStates`; a user without one
    /// gets the prior `w = 0`, `A = λI`). Decisions are evaluated on their first slot: the chosen
    /// item must be the first shown one (one shown item per decision, as `osprey simulate` logs).
    ///
    /// The reward model of DR is fitted on the log itself, cross-fitted so no decision is scored
    /// by a model that learned it: decisions are split by position (even, odd), each half fits a
    /// ridge regression per user (`reward − offset` on the item's features, penalty λ, prior 0)
    /// and predicts the other half. Given `expectedReward(uid, row)` (a simulator's truth), it
    /// also returns the target's true value on these decisions' contexts,
    /// `mean_t Σ_a π(a|x_t) r̄(x_t, a)`, computed with the very probabilities the samples use. O(n·(d² + N·d)) for n decisions of N candidates, plus the
    /// target's selector cost per decision (O(M·N·d) for Thompson with M draws).
    public static func samples<F: CataloguedFeatures>(
        decisions: [LoggedDecision], features: F, target: ExplorationSelector, targetStates: [String: RidgeState],
        lambda: Float, seed: UInt64 = 1, expectedReward: ((String, Int) -> Double)? = nil
    ) -> (samples: [OffPolicySample], skipped: Skipped, trueValue: Double?) {
        var skipped = Skipped()
        var usable: [UsableDecision] = []
        let catalog = features.catalog
        for d in decisions {
            guard let reward = d.reward, reward.isFinite, let chosen = d.chosen, d.items.first?.item == chosen else {
                skipped.noFeedback += 1; continue
            }
            guard let p = d.chosenPropensity, p > 0, p <= 1 else { skipped.noPropensity += 1; continue }
            guard let names = d.candidates else { skipped.noCandidates += 1; continue }
            let rows = names.compactMap { catalog.row(of: $0) }
            guard rows.count == names.count, let chosenRow = catalog.row(of: chosen), let position = rows.firstIndex(of: chosenRow) else {
                skipped.unknownItem += 1; continue
            }
            usable.append(UsableDecision(uid: d.uid, candidates: rows, chosen: chosenRow, position: position, propensity: p, reward: reward))
        }
        // Cross-fitted reward model: one ridge regression per (user, half).
        let prior = [Float](repeating: 0, count: features.dimension)
        var halves: [[String: RidgeState]] = [[:], [:]]
        for (t, u) in usable.enumerated() {
            var state = halves[t % 2][u.uid] ?? RidgeState(prior: prior, lambda: lambda)
            features.withFeatures(item: u.chosen) { f, offset in _ = state.update(features: f, target: Float(u.reward) - offset) }
            halves[t % 2][u.uid] = state
        }
        let fresh = RidgeState(prior: prior, lambda: lambda)
        var rng = SplitMix64(seed: seed)
        var truth = 0.0
        var out: [OffPolicySample] = []
        out.reserveCapacity(usable.count)
        for (t, u) in usable.enumerated() {
            let model = halves[1 - t % 2][u.uid] ?? fresh
            let predicted = ExplorationSelector.scores(candidates: u.candidates, weights: model.weights, features: features)
            let probabilities = target.actionProbabilities(
                candidates: u.candidates, ridge: targetStates[u.uid] ?? fresh, features: features, using: &rng)
            var value = 0.0
            for (p, r) in zip(probabilities, predicted) { value += p * Double(r) }
            if let expectedReward {
                for (p, row) in zip(probabilities, u.candidates) where p > 0 { truth += p * expectedReward(u.uid, row) }
            }
            out.append(OffPolicySample(
                loggingPropensity: u.propensity, targetProbability: probabilities[u.position], reward: u.reward,
                predictedReward: Double(predicted[u.position]), predictedValue: value))
        }
        let trueValue = expectedReward == nil || out.isEmpty ? nil : truth / Double(out.count)
        return (out, skipped, trueValue)
    }
}
