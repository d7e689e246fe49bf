import OspreyMath

/// Chooses the items to show a user under an ``ExplorationPolicy``: the engine calls it per
/// request with the user's ridge state (``UserWeights/ridge``), the version's feature function
/// (e.g. ``MaterializedFeatures``), the candidate rows and k.
///
/// **Propensities** are the probability that the policy shows the item *at that position*,
/// marginal over the policy's own randomness, given the user's state and the candidates:
/// - `greedy` and `linucb(α)` are deterministic (ties go to the earlier candidate): 1.
/// - `epsilon_greedy(ε)`, exactly: the greedy top-k is computed, then each slot independently
///   with probability ε shows instead a candidate drawn uniformly from those outside the greedy
///   top-k and not yet drawn. So the greedy item of a slot has propensity `1 − ε` and an explored
///   item `ε / (N − k)` (draws without replacement are exchangeable); over the N candidates a
///   slot's propensities sum to 1. With `N == k` nothing is outside the top-k: propensity 1.
/// - `thompson(σ)`, estimated by Monte Carlo: ``propensitySamples`` further posterior draws
///   (default 256) are ranked the same way, and an item's propensity is `(m + 1) / (M + 1)`,
///   `m` being the draws that put it at its position — counting the draw actually used, so it is
///   never 0. Its standard error is about `sqrt(p(1 − p)/M)` (≤ 0.031 at M = 256): use an
///   ε-greedy logging policy where exact propensities matter (off-policy evaluation).
///
/// Costs over N candidates, dimension d: greedy O(N·d + N log k); ε-greedy the same plus O(k);
/// LinUCB O(N·d²) (one `A⁻¹f` per candidate); Thompson O(d³) to factor `A` plus O(d² + N·d +
/// N log k) per draw, so O(M·(d² + N·d)) with propensities.
public struct ExplorationSelector: Sendable {
    /// Monte Carlo draws behind a Thompson propensity when none is given.
    public static let defaultPropensitySamples = 256

    public var policy: ExplorationPolicy
    /// Posterior draws used to estimate Thompson propensities; 0 leaves them nil.
    public var propensitySamples: Int

    public init(policy: ExplorationPolicy, propensitySamples: Int = Self.defaultPropensitySamples) {
        self.policy = policy
        self.propensitySamples = propensitySamples
    }

    /// The `min(k, N)` items to show, in order, with score, exploring value and propensity.
    /// `candidates` are catalogue rows of `features`; randomness comes only from `rng`.
    /// - Precondition: `ridge.dimension == features.dimension`, k ≥ 1.
    public func select<F: FeatureFunction>(
        k: Int, candidates: [Int], ridge: RidgeState, features: F, using rng: inout SplitMix64
    ) -> [ExploredItem] {
        precondition(ridge.stride == features.stride, "the user's weights and the features differ in dimension")
        precondition(k >= 1, "k must be at least 1")
        guard !candidates.isEmpty else { return [] }
        let n = candidates.count, shown = min(k, n)
        let scores = Self.scores(candidates: candidates, weights: ridge.weights, features: features)
        switch policy {
        case .greedy:
            return Self.ranking(scores, k: shown).map {
                ExploredItem(row: candidates[$0], score: scores[$0], propensity: 1)
            }
        case .epsilonGreedy(let epsilon):
            let top = Self.ranking(scores, k: shown)
            guard n > shown, epsilon > 0 else {
                return top.map { ExploredItem(row: candidates[$0], score: scores[$0], propensity: 1) }
            }
            var inTop = [Bool](repeating: false, count: n)
            for p in top { inTop[p] = true }
            var outside = (0..<n).filter { !inTop[$0] }
            let explored = epsilon / Double(n - shown)
            return top.map { p in
                // A slot explores only while an item outside the greedy top-k is left to show:
                // with more slots than such items (k > n − k), the last may all have been shown.
                if rng.nextUniform() < epsilon, !outside.isEmpty {
                    let j = Int(rng.next() % UInt64(outside.count))
                    let q = outside.remove(at: j)
                    return ExploredItem(row: candidates[q], score: scores[q], propensity: explored)
                }
                return ExploredItem(row: candidates[p], score: scores[p], propensity: 1 - epsilon)
            }
        case .linUCB(let alpha):
            let ucb = Self.upperBounds(candidates: candidates, scores: scores, alpha: alpha, ridge: ridge, features: features)
            return Self.ranking(ucb, k: shown).map {
                ExploredItem(row: candidates[$0], score: scores[$0], exploring: ucb[$0], propensity: 1)
            }
        case .thompson(let sigma):
            let sampler = PosteriorSampler(ridge: ridge)
            var w = [Float]()
            sampler.sample(sigma: sigma, into: &w, using: &rng)
            let sampled = Self.scores(candidates: candidates, weights: w, features: features)
            let order = Self.ranking(sampled, k: shown)
            var propensities: [Double?] = Array(repeating: nil, count: shown)
            if propensitySamples > 0 {
                var hits = [Int](repeating: 1, count: shown)
                for _ in 0..<propensitySamples {
                    sampler.sample(sigma: sigma, into: &w, using: &rng)
                    let other = Self.ranking(Self.scores(candidates: candidates, weights: w, features: features), k: shown)
                    for j in 0..<shown where other[j] == order[j] { hits[j] += 1 }
                }
                propensities = hits.map { Double($0) / Double(propensitySamples + 1) }
            }
            return order.enumerated().map { j, p in
                ExploredItem(row: candidates[p], score: scores[p], exploring: sampled[p], propensity: propensities[j])
            }
        }
    }

    /// The probability of each candidate being shown when one item is shown (k = 1): exact for
    /// greedy, ε-greedy and LinUCB; for Thompson the share of ``propensitySamples`` posterior
    /// draws (at least 1) that rank it first. Used to evaluate a policy off-line. Cost as
    /// ``select(k:candidates:ridge:features:using:)``.
    public func actionProbabilities<F: FeatureFunction>(
        candidates: [Int], ridge: RidgeState, features: F, using rng: inout SplitMix64
    ) -> [Double] {
        let n = candidates.count
        guard n > 0 else { return [] }
        var probabilities = [Double](repeating: 0, count: n)
        let scores = Self.scores(candidates: candidates, weights: ridge.weights, features: features)
        switch policy {
        case .greedy:
            probabilities[Self.ranking(scores, k: 1)[0]] = 1
        case .epsilonGreedy(let epsilon):
            let best = Self.ranking(scores, k: 1)[0]
            if n == 1 { probabilities[0] = 1; break }
            for i in 0..<n { probabilities[i] = epsilon / Double(n - 1) }
            probabilities[best] = 1 - epsilon
        case .linUCB(let alpha):
            let ucb = Self.upperBounds(candidates: candidates, scores: scores, alpha: alpha, ridge: ridge, features: features)
            probabilities[Self.ranking(ucb, k: 1)[0]] = 1
        case .thompson(let sigma):
            let sampler = PosteriorSampler(ridge: ridge)
            let draws = max(1, propensitySamples)
            var w = [Float]()
            for _ in 0..<draws {
                sampler.sample(sigma: sigma, into: &w, using: &rng)
                probabilities[Self.ranking(Self.scores(candidates: candidates, weights: w, features: features), k: 1)[0]] += 1
            }
            for i in 0..<n { probabilities[i] /= Double(draws) }
        }
        return probabilities
    }

    /// `offset + w · f` per candidate. O(N·d).
    public static func scores<F: FeatureFunction>(candidates: [Int], weights: [Float], features: F) -> [Float] {
        weights.withUnsafeBufferPointer { w in
            candidates.map { row in
                features.withFeatures(item: row) { f, offset in
                    offset + VectorKernels.dot(w.baseAddress!, f, count: features.stride)
                }
            }
        }
    }

    /// The LinUCB exploration bonus `sqrt(fᵀ A⁻¹ f)` of one padded feature vector. O(d²).
    public static func confidenceWidth(_ f: UnsafePointer<Float>, ridge: RidgeState) -> Float {
        let d = ridge.dimension, s = ridge.stride
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: s) { u in
            let up = u.baseAddress!
            up.initialize(repeating: 0, count: s)
            ridge.inverse.withUnsafeBufferPointer { inv in
                // A⁻¹ is symmetric: A⁻¹f is a sum of its rows weighted by f.
                for j in 0..<d where f[j] != 0 { VectorKernels.axpy(f[j], inv.baseAddress! + j * s, up, count: s) }
            }
            // Float32 drift can make a tiny quadratic form negative.
            return max(VectorKernels.dot(f, up, count: s), 0).squareRoot()
        }
    }

    /// `score + α·sqrt(fᵀA⁻¹f)` per candidate. O(N·d²).
    static func upperBounds<F: FeatureFunction>(
        candidates: [Int], scores: [Float], alpha: Double, ridge: RidgeState, features: F
    ) -> [Float] {
        candidates.enumerated().map { p, row in
            features.withFeatures(item: row) { f, _ in scores[p] + Float(alpha) * confidenceWidth(f, ridge: ridge) }
        }
    }

    /// Positions of the `k` highest values, best first, ties to the lower position. O(N log k).
    public static func ranking(_ values: [Float], k: Int) -> [Int] {
        var top = TopKSelector(k: k)
        for (p, v) in values.enumerated() { top.offer(index: p, score: v.isNaN ? -.infinity : v) }
        return top.sorted().map(\.index)
    }
}
