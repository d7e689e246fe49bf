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

    /// Without attributes the generator's output is what it was before items had any: tests,
    /// benchmarks and their cached files depend on each seed's ratings. The checksums were taken
    /// from the generator before attributes were added.
    @Test func outputWithoutAttributesIsUnchanged() throws {
        let cases: [(SyntheticRatings.Configuration, UInt64)] = [
            (.init(), 17045621282037123010),
            (.init(users: 300, items: 120, ratings: 4000, dimension: 6, noise: 0.3, seed: 7, zipfExponent: 1.1), 8386936670137202753),
            (.init(users: 200, items: 90, ratings: 3000, dimension: 3, seed: 11, drift: 0.7, driftAt: 0.4), 9934267790037740727),
        ]
        for (c, expected) in cases {
            let data = try SyntheticRatings(c)
            var hash = FNV1a()
            hash.add(SyntheticRatings.csv(data.ratings()).utf8)
            for x in data.userFactors + data.driftedUserFactors + data.itemFactors + data.userBiases + data.itemBiases {
                hash.add(x.bitPattern)
            }
            #expect(hash.value == expected, "seed \(c.seed): checksum \(hash.value)")
        }
    }

    @Test func csvRoundTripsThroughTheReader() throws {
        let ratings = try SyntheticRatings(.init(users: 20, items: 20, ratings: 50, seed: 2)).ratings()
        let parsed = try RatingsReader().parse(Data(SyntheticRatings.csv(ratings).utf8), path: "x.csv")
        #expect(parsed.ratings == ratings)
    }
}

import Foundation

/// 64-bit FNV-1a, a checksum that is the same on every platform and run.
struct FNV1a {
    private(set) var value: UInt64 = 0xCBF2_9CE4_8422_2325

    mutating func add(_ byte: UInt8) {
        value = (value ^ UInt64(byte)) &* 0x100_0000_01B3
    }

    mutating func add(_ bytes: some Sequence<UInt8>) {
        for b in bytes { add(b) }
    }

    mutating func add(_ word: UInt64) {
        for k in 0..<8 { add(UInt8(truncatingIfNeeded: word >> (8 * k))) }
    }
}
