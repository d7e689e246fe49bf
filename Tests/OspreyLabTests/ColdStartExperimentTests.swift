import OspreyModel
import Testing
@testable import OspreyLab

/// On data whose attributes explain most of each item's vector, new items score better from
/// their attributes than as the mean item, and better still after their first ratings.
struct ColdStartExperimentTests {
    @Test func attributesBeatTheMeanItemAndFirstRatingsBeatAttributes() throws {
        let data = try SyntheticRatings(.init(users: 400, items: 300, ratings: 24_000, dimension: 4, noise: 0.3, seed: 5,
                                              attributeShare: 0.9))
        let attributes = Dictionary(uniqueKeysWithValues: data.catalogue!.items.map { ($0.id, $0.attributes) })
        let r = try ColdStartExperiment(configuration: .init(factors: 4, lambda: 1, iterations: 8), newShare: 0.15)
            .run(ratings: data.ratings(), attributes: attributes)
        #expect(r.newItems >= 20 && r.scoredRatings > 1_000)
        #expect(r.attributesRMSE < r.meanItemRMSE - 0.05, "(b) \(r.attributesRMSE) against (a) \(r.meanItemRMSE)")
        #expect(r.onlineRMSE < r.attributesRMSE, "(c) \(r.onlineRMSE) against (b) \(r.attributesRMSE)")
    }

    @Test func aModelWithoutBiasesIsRefused() throws {
        let data = try SyntheticRatings(.init(users: 50, items: 40, ratings: 800, dimension: 2, seed: 1, attributeShare: 0.5))
        let attributes = Dictionary(uniqueKeysWithValues: data.catalogue!.items.map { ($0.id, $0.attributes) })
        #expect(throws: ColdStartExperiment.Failure.self) {
            try ColdStartExperiment(configuration: .init(factors: 2, lambda: 1, biases: false)).run(ratings: data.ratings(), attributes: attributes)
        }
    }
}
