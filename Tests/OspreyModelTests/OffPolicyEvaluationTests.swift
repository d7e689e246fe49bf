import Testing
@testable import OspreyModel

/// Off-policy estimators against values known exactly by construction (their coverage on the
/// bandit simulator is checked in OspreyLabTests).
struct OffPolicyEvaluationTests {
    @Test func onPolicyIPSIsTheMeanReward() {
        let samples = (0..<50).map { i in
            OffPolicySample(loggingPropensity: 0.25, targetProbability: 0.25, reward: Double(i % 7))
        }
        let mean = samples.reduce(0) { $0 + $1.reward } / 50
        #expect(abs(OffPolicyEvaluation.ips(samples).value - mean) < 1e-12)
        #expect(abs(OffPolicyEvaluation.selfNormalizedIPS(samples).value - mean) < 1e-12)
        // With a reward model that is exactly right, DR has no variance from the weights.
        let exact = samples.map { s in
            OffPolicySample(loggingPropensity: 0.5, targetProbability: 1, reward: 3, predictedReward: 3, predictedValue: 3)
        }
        let dr = OffPolicyEvaluation.doublyRobust(exact)
        #expect(dr.value == 3 && dr.standardError == 0)
    }

    @Test func decisionLogRoundTripsThroughJSONL() throws {
        let d = LoggedDecision(eventId: "e1", uid: "u1", policy: "epsilon_greedy(0.2)",
                               items: [.init(item: "i3", score: 3.5, propensity: 0.8)], candidates: ["i3", "i4"],
                               chosen: "i3", reward: 4)
        let line = d.jsonLine()
        #expect(line.contains("\"event_id\":\"e1\""))
        #expect(try LoggedDecision.readJSONL(line + "\n\n" + line) == [d, d])
        #expect(throws: LoggedDecision.ReadError.self) { try LoggedDecision.readJSONL(line + "\n{\"uid\":1}") }
    }
}
