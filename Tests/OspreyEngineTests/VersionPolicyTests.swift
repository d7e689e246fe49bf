import Foundation
import OspreyModel
import OspreyStorage
import Testing
@testable import OspreyEngine

/// Which versions are pruned, as a pure function of the catalogue.
struct VersionPolicyTests {
    func records(_ parents: [Int: Int?]) -> [VersionRecord] {
        let metadata = TrainingMetadata(factors: 2, lambda: 1, scaledLambda: false, lambdaSelection: "given", iterations: 1, seed: 1,
                                        trainingRMSE: 0, validationRMSE: nil, ratings: 0, durationSeconds: 0)
        return parents.keys.sorted().map {
            VersionRecord(model: "m", number: $0, createdAt: Date(), status: .retired, parent: parents[$0]!, dimension: 2, items: 0,
                          metadata: metadata)
        }
    }

    @Test func keepsTheNewestAndNeverServingItsParentOrTheChallenger() {
        let chain = records([1: nil, 2: 1, 3: 2, 4: 3, 5: 4])
        #expect(VersionPolicy.prunable(chain, serving: 5, challenger: nil, keep: 2) == [1, 2, 3])
        #expect(VersionPolicy.prunable(chain, serving: 5, challenger: nil, keep: 10).isEmpty)
        // Rolled back to 2: it and its parent stay, whatever their age.
        #expect(VersionPolicy.prunable(chain, serving: 2, challenger: nil, keep: 2) == [3])
        #expect(VersionPolicy.prunable(chain, serving: 5, challenger: 2, keep: 2) == [1, 3])
        // keep 0 still keeps the newest.
        #expect(VersionPolicy.prunable(chain, serving: 3, challenger: nil, keep: 0) == [1, 4])
        #expect(VersionPolicy.prunable([], serving: 1, challenger: nil, keep: 1).isEmpty)
    }

    /// Against a brute-force reading of the rule, over every serving version, challenger and
    /// keep of a small catalogue.
    @Test func matchesTheRuleExhaustively() {
        let chain = records([1: nil, 2: 1, 3: 1, 4: 3, 5: 2, 6: 5])
        for serving in 1...6 {
            for challenger in [nil] + Array(1...6) where challenger != serving {
                for keep in 0...7 {
                    let parent = chain.first { $0.number == serving }!.parent
                    let newest = Set((1...6).reversed().prefix(max(1, keep)))
                    let expected = (1...6).filter { !newest.contains($0) && $0 != serving && $0 != parent && $0 != challenger }
                    #expect(VersionPolicy.prunable(chain.shuffled(), serving: serving, challenger: challenger, keep: keep) == expected)
                }
            }
        }
    }
}
