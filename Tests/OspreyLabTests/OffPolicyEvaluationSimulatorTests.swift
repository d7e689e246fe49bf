import OspreyMath
import OspreyModel
import Testing
@testable import OspreyLab

/// Off-policy estimators on the simulator, where the target policy's true value is known.
struct OffPolicyEvaluationSimulatorTests {
    /// An ε-greedy logger learning online in a small world, and a fixed target: greedy or LinUCB on
    /// a model learned from another 3000 rounds of the same world (another model version; learned
    /// from the log itself, the target would favour items whose logged noise was lucky, and every
    /// estimator would be biased upwards). The target's true value on the logged contexts is
    /// exact (the world is known).
    static func evaluate(seed: UInt64, target: ExplorationPolicy) -> (estimates: [OffPolicyEstimate], truth: Double) {
        let world = try! BanditWorld(.init(users: 30, items: 300, candidates: 8, dimension: 4, seed: seed, clusters: 4))
        let rounds = world.rounds(6000)
        var log: [LoggedDecision] = []
        _ = BanditSimulation(world: world, rounds: Array(rounds[..<3000])).run(policy: .epsilonGreedy(0.3), seed: seed) { log.append($0) }
        let (_, users) = BanditSimulation(world: world, rounds: Array(rounds[3000...])).run(policy: .epsilonGreedy(0.3), seed: seed &+ 7)
        var states: [String: RidgeState] = [:]
        for (u, state) in users.enumerated() { if let state { states["u\(u)"] = state.ridge } }
        let data = OffPolicyEvaluation.samples(
            decisions: log, features: world.features, target: ExplorationSelector(policy: target), targetStates: states,
            lambda: 1, seed: seed
        ) { uid, row in world.expectedReward(user: Int(uid.dropFirst())!, item: row) }
        #expect(data.samples.count == 3000 && data.skipped.total == 0)
        return (OffPolicyEvaluation.all(data.samples), data.trueValue!)
    }

    @Test func estimatesCoverTheTrueValueOnTheSimulator() {
        let seeds: [UInt64] = Array(1...12)
        var covered = [String: Int]()
        var absoluteError = [String: Double]()
        var drBelowIPS = 0
        for seed in seeds {
            let (estimates, truth) = Self.evaluate(seed: seed, target: seed % 2 == 0 ? .greedy : .linUCB(0.5))
            for e in estimates {
                if e.contains(truth) { covered[e.estimator, default: 0] += 1 }
                absoluteError[e.estimator, default: 0] += abs(e.value - truth)
            }
            let ips = estimates.first { $0.estimator == "ips" }!, dr = estimates.first { $0.estimator == "dr" }!
            if dr.standardError < ips.standardError { drBelowIPS += 1 }
        }
        // 95% intervals: at least 9 of 12 cover the truth (the chance of fewer is < 1% at 95% coverage).
        for name in ["ips", "snips", "dr"] { #expect(covered[name, default: 0] >= 9, "\(name) covered \(covered[name, default: 0])/12") }
        #expect(drBelowIPS == seeds.count)
        #expect(absoluteError["dr"]! < absoluteError["ips"]!)
    }
}
