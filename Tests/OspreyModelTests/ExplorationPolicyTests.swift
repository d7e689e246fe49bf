import OspreyMath
import Testing
@testable import OspreyModel

/// The exploration policies checked against direct computations.
struct ExplorationPolicyTests {
    /// A small world's features and a user state after `observations` random observations.
    struct Fixture {
        let features: MaterializedFeatures
        let ridge: RidgeState
        let candidates: [Int]

        init(seed: UInt64 = 3, observations: Int = 15, candidates n: Int = 12) {
            (features, candidates) = Self.world(users: 5, items: 60, dimension: 4, candidates: n, seed: seed)
            var ridge = RidgeState(prior: [Float](repeating: 0, count: features.dimension), lambda: 1)
            var rng = SplitMix64(seed: seed &+ 100)
            for _ in 0..<observations {
                let item = Int(rng.next() % 60)
                features.withFeatures(item: item) { f, _ in
                    _ = ridge.update(features: f, target: Float(rng.nextGaussian()))
                }
            }
            self.ridge = ridge
        }

        /// The features of a synthetic world and the first round's `n` distinct candidates, drawn
        /// as OspreyLab's `BanditWorld` draws them with these settings (no clusters, no user
        /// pools, μ = 3.5): rows `[q_i; 1]` with `q_i ~ N(0, d^-1/2 I)`, offsets `μ + b_i` with
        /// `b_i ~ N(0, 0.5²)`; the users' tastes are drawn only to keep the stream in step.
        static func world(users: Int, items: Int, dimension d: Int, candidates n: Int, seed: UInt64)
            -> (features: MaterializedFeatures, candidates: [Int]) {
            var rng = SplitMix64(seed: seed)
            let scale = 1 / Double(d).squareRoot().squareRoot()
            for _ in 0..<(users * d) { _ = rng.nextGaussian() }
            let q = (0..<(items * d)).map { _ in rng.nextGaussian() * scale }
            for _ in 0..<users { _ = rng.nextGaussian() }
            let b = (0..<items).map { _ in rng.nextGaussian() * 0.5 }
            let s = VectorKernels.paddedStride(d + 1)
            var table = [Float](repeating: 0, count: items * s)
            for i in 0..<items {
                for j in 0..<d { table[i * s + j] = Float(q[i * d + j]) }
                table[i * s + d] = 1
            }
            let features = MaterializedFeatures(dimension: d + 1, ids: (0..<items).map { "i\($0)" }, table: table,
                                                offsets: b.map { Float(3.5 + $0) })
            var rounds = SplitMix64(seed: seed ^ 0x5EED_0FB4_0D17_0001)
            _ = rounds.next() // the arriving user
            var candidates: [Int] = []
            while candidates.count < n {
                let i = Int(rounds.next() % UInt64(items))
                if !candidates.contains(i) { candidates.append(i) }
            }
            return (features, candidates)
        }

        var scores: [Float] { ExplorationSelector.scores(candidates: candidates, weights: ridge.weights, features: features) }

        /// A in Double.
        var gram: [Double] { ridge.gramMatrix() }
    }

    @Test func policiesPrintAndParseInTheAPIForm() throws {
        for text in ["greedy", "epsilon_greedy(0.1)", "linucb(1.0)", "thompson(1.0)"] {
            #expect(try ExplorationPolicy.parse(text).description == text)
        }
        #expect(try ExplorationPolicy.parse(" LinUCB( 0.5 ) ") == .linUCB(0.5))
        for bad in ["", "greedy()", "epsilon_greedy(1.5)", "linucb(-1)", "thompson(x)", "ucb(1)", "linucb(nan)"] {
            #expect(throws: ExplorationPolicy.ParseError.self) { try ExplorationPolicy.parse(bad) }
        }
    }

    @Test func greedyShowsTheHighestScoresInOrder() {
        let fx = Fixture()
        var rng = SplitMix64(seed: 1)
        let shown = ExplorationSelector(policy: .greedy).select(k: 4, candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &rng)
        let expected = zip(fx.candidates, fx.scores).sorted { $0.1 > $1.1 }.prefix(4).map(\.0)
        #expect(shown.map(\.row) == expected)
        #expect(shown.allSatisfy { $0.propensity == 1 && $0.exploring == nil })
    }

    /// More slots than items outside the greedy top-k (found by the contract test's stateful
    /// phase: a division by zero once every outside item was shown).
    @Test func epsilonGreedyWithFewItemsOutsideTheTopKShowsEachItemOnce() {
        let fx = Fixture()
        let k = fx.candidates.count - 1  // one item outside the greedy top-k
        for seed in 0..<64 as Range<UInt64> {
            var rng = SplitMix64(seed: seed)
            let shown = ExplorationSelector(policy: .epsilonGreedy(1)).select(
                k: k, candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &rng)
            #expect(shown.count == k && Set(shown.map(\.row)).count == k, "seed \(seed): \(shown.map(\.row))")
        }
    }

    @Test func epsilonGreedyPropensitiesAreExactAndSumToOne() {
        let fx = Fixture()
        let n = fx.candidates.count, k = 3, epsilon = 0.3
        let selector = ExplorationSelector(policy: .epsilonGreedy(epsilon))
        let greedyTop = zip(fx.candidates, fx.scores).sorted { $0.1 > $1.1 }.prefix(k).map(\.0)
        var rng = SplitMix64(seed: 2)
        var counts = [[Int: Int]](repeating: [:], count: k)
        let trials = 20_000
        for _ in 0..<trials {
            let shown = selector.select(k: k, candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &rng)
            #expect(Set(shown.map(\.row)).count == k)
            for (j, item) in shown.enumerated() {
                let expected = item.row == greedyTop[j] ? 1 - epsilon : epsilon / Double(n - k)
                #expect(abs(item.propensity! - expected) < 1e-12)
                counts[j][item.row, default: 0] += 1
            }
        }
        for j in 0..<k {
            // Per slot: the greedy item plus the N − k outside items carry all the probability.
            #expect(abs((1 - epsilon) + Double(n - k) * epsilon / Double(n - k) - 1) < 1e-12)
            // Empirical frequencies match the propensities (5 standard errors).
            for (row, c) in counts[j] {
                let p = row == greedyTop[j] ? 1 - epsilon : epsilon / Double(n - k)
                #expect(abs(Double(c) / Double(trials) - p) < 5 * (p * (1 - p) / Double(trials)).squareRoot())
            }
        }
        var r2 = SplitMix64(seed: 3)
        let probabilities = selector.actionProbabilities(candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &r2)
        #expect(abs(probabilities.reduce(0, +) - 1) < 1e-12)
    }

    @Test func linUCBBonusEqualsADirectSolve() throws {
        let fx = Fixture()
        let d = fx.ridge.dimension
        for row in fx.candidates {
            let width = fx.features.withFeatures(item: row) { f, _ in ExplorationSelector.confidenceWidth(f, ridge: fx.ridge) }
            let f = fx.features.withFeatures(item: row) { p, _ in (0..<d).map { Double(p[$0]) } }
            let x = try Cholesky.solve(fx.gram, n: d, f)
            let direct = zip(f, x).reduce(0) { $0 + $1.0 * $1.1 }.squareRoot()
            #expect(abs(Double(width) - direct) < 1e-4 * max(1, direct))
        }
        var rng = SplitMix64(seed: 4)
        let shown = ExplorationSelector(policy: .linUCB(2)).select(k: 3, candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &rng)
        for item in shown {
            let width = fx.features.withFeatures(item: item.row) { f, _ in ExplorationSelector.confidenceWidth(f, ridge: fx.ridge) }
            #expect(abs(item.exploring! - (item.score + 2 * width)) < 1e-5)
            #expect(item.propensity == 1)
        }
        #expect(zip(shown, shown.dropFirst()).allSatisfy { $0.exploring! >= $1.exploring! })
    }

    @Test func thompsonDrawsHaveCovarianceSigmaSquaredTimesTheInverse() throws {
        let fx = Fixture(observations: 8)
        let d = fx.ridge.dimension, sigma = 0.7
        let sampler = PosteriorSampler(ridge: fx.ridge)
        var rng = SplitMix64(seed: 5)
        var w = [Float]()
        let draws = 40_000
        var mean = [Double](repeating: 0, count: d)
        var second = [Double](repeating: 0, count: d * d)
        for _ in 0..<draws {
            sampler.sample(sigma: sigma, into: &w, using: &rng)
            for i in 0..<d {
                let di = Double(w[i] - fx.ridge.weights[i])
                mean[i] += di
                for j in 0..<d { second[i * d + j] += di * Double(w[j] - fx.ridge.weights[j]) }
            }
        }
        let inverse = try Cholesky.inverse(fx.gram, n: d)
        let scale = (0..<d).map { inverse[$0 * d + $0] }.max()!
        for i in 0..<d {
            #expect(abs(mean[i] / Double(draws)) < 0.02 * sigma)
            for j in 0..<d {
                let expected = sigma * sigma * inverse[i * d + j]
                #expect(abs(second[i * d + j] / Double(draws) - expected) < 0.03 * sigma * sigma * scale)
            }
        }
    }

    @Test func thompsonPropensityEstimatesTheFrequencyOfTheShownRanking() {
        let fx = Fixture(observations: 4, candidates: 6)
        let selector = ExplorationSelector(policy: .thompson(1), propensitySamples: 2000)
        var rng = SplitMix64(seed: 6)
        let shown = selector.select(k: 1, candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &rng)[0]
        var r2 = SplitMix64(seed: 7)
        let probabilities = selector.actionProbabilities(candidates: fx.candidates, ridge: fx.ridge, features: fx.features, using: &r2)
        let position = fx.candidates.firstIndex(of: shown.row)!
        #expect(abs(shown.propensity! - probabilities[position]) < 0.05)
        #expect(shown.exploring != nil)
        #expect(abs(probabilities.reduce(0, +) - 1) < 1e-9)
    }
}
