import Testing
@testable import OspreyModel

struct SyntheticRatingsTests {
    @Test func deterministicPerSeedUniqueAndZipf() throws {
        let c = SyntheticRatings.Configuration(users: 100, items: 50, ratings: 2000, dimension: 4, noise: 0.2, seed: 9)
        let a = try SyntheticRatings(c).ratings()
        let b = try SyntheticRatings(c).ratings()
        #expect(a == b)
        var other = c
        other.seed = 10
        #expect(try SyntheticRatings(other).ratings() != a)
        #expect(Set(a.map { "\($0.uid)/\($0.item)" }).count == a.count)
        var counts: [String: Int] = [:]
        for r in a { counts[r.item, default: 0] += 1 }
        #expect(counts["i0", default: 0] > counts["i25", default: 0])
        #expect(counts["i0", default: 0] > counts["i49", default: 0])
    }

    @Test func rejectsImpossibleConfigurations() {
        #expect(throws: SyntheticRatings.ConfigurationError.self) { try SyntheticRatings(.init(users: 0)) }
        #expect(throws: SyntheticRatings.ConfigurationError.self) { try SyntheticRatings(.init(users: 10, items: 10, ratings: 80)) }
        #expect(throws: SyntheticRatings.ConfigurationError.self) { try SyntheticRatings(.init(noise: -1)) }
    }

    @Test func csvRoundTripsThroughTheReader() throws {
        let ratings = try SyntheticRatings(.init(users: 20, items: 20, ratings: 50, seed: 2)).ratings()
        let parsed = try RatingsReader().parse(Data(SyntheticRatings.csv(ratings).utf8), path: "x.csv")
        #expect(parsed.ratings == ratings)
    }
}

import Foundation
