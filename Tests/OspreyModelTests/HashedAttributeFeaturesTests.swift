import Foundation
import OspreyMath
import Testing
@testable import OspreyModel

/// The attribute map of ``HashedAttributeFeatures`` recovers a known linear model from attributes
/// to item vectors, scores items it never saw, and round-trips through its stored bytes.
struct HashedAttributeFeaturesTests {
    static let d = 5 // four factors and the bias's constant 1, as ALS lays out a trained vector
    static let genres = (0..<12).map { "g\($0)" }
    static let studios = (0..<8).map { "s\($0)" }

    /// A known model: each genre and studio has a vector; an item's factors are the sum of its
    /// attributes' vectors and a linear term in its year, its last entry is 1, and its offset
    /// is 3 plus its genres' shares.
    struct Truth {
        var genre: [[Float]], studio: [[Float]], genreOffset: [Float]

        init(seed: UInt64) {
            var rng = SplitMix64(seed: seed)
            genre = HashedAttributeFeaturesTests.genres.map { _ in (0..<4).map { _ in Float(rng.nextGaussian()) } }
            studio = HashedAttributeFeaturesTests.studios.map { _ in (0..<4).map { _ in Float(rng.nextGaussian()) } }
            genreOffset = HashedAttributeFeaturesTests.genres.map { _ in Float(rng.nextGaussian()) * 0.3 }
        }

        func item(genres g: [Int], studio s: Int, year: Double) -> (vector: [Float], offset: Float, attributes: ItemAttributes) {
            var v = [Float](repeating: 0, count: 4)
            for k in 0..<4 { v[k] = g.reduce(0) { $0 + genre[$1][k] } + studio[s][k] }
            v[0] += Float((year - 1990) / 10)
            let offset = 3 + g.reduce(0) { $0 + genreOffset[$1] }
            let attributes: ItemAttributes = [
                "genres": .strings(g.map { HashedAttributeFeaturesTests.genres[$0] }),
                "studio": .string(HashedAttributeFeaturesTests.studios[s]), "year": .number(year),
            ]
            return (v + [1], offset, attributes)
        }
    }

    /// `n` random items of the truth: their table and their attributes.
    static func items(_ truth: Truth, n: Int, seed: UInt64) -> (MaterializedFeatures, [ItemAttributes]) {
        var rng = SplitMix64(seed: seed)
        let s = VectorKernels.paddedStride(d)
        var table = [Float](repeating: 0, count: n * s), offsets: [Float] = [], attributes: [ItemAttributes] = []
        for i in 0..<n {
            let a = Int(rng.next() % 12), b = (a + 1 + Int(rng.next() % 11)) % 12
            let item = truth.item(genres: [a, b], studio: Int(rng.next() % 8), year: 1960 + Double(rng.next() % 60))
            for k in 0..<d { table[i * s + k] = item.vector[k] }
            offsets.append(item.offset)
            attributes.append(item.attributes)
        }
        return (MaterializedFeatures(dimension: d, ids: (0..<n).map { "i\($0)" }, table: table, offsets: offsets), attributes)
    }

    @Test func fnvHashIsThePublishedOne() {
        #expect(HashedAttributeFeatures.fnv1a("a") == 0xaf63_dc4c_8601_ec8c)
    }

    @Test func recoversAKnownLinearModelForItemsItNeverSaw() throws {
        let truth = Truth(seed: 7)
        let (features, attributes) = Self.items(truth, n: 600, seed: 1)
        var lines: [String] = []
        let map = try HashedAttributeFeatures.fit(features: features, attributes: { attributes[$0] }, buckets: 512) { lines.append($0) }
        #expect(lines.count == 4)
        #expect(map.heldOutR2 > 0.98, "held-out R² \(map.heldOutR2)")
        #expect(map.items == 600)
        // Buckets follow the distinct tokens (12 genres, 8 studios, the year and its bands:
        // about 30): the next power of two at or above four times that. The recovery below needs the categories
        // in buckets of their own.
        #expect(map.buckets == 128)
        let categories = Self.genres.map { "genres=\($0)" } + Self.studios.map { "studio=\($0)" } + ["year#"]
        #expect(Set(categories.map { HashedAttributeFeatures.fnv1a($0) % 128 }).count == categories.count)
        // New combinations, including a year outside the training range's middle.
        let s = VectorKernels.paddedStride(Self.d)
        var worst: Float = 0
        for (g, st, year) in [([0, 5], 3, 1975.0), ([7, 11], 0, 2012), ([2, 9], 7, 1961)] {
            let item = truth.item(genres: g, studio: st, year: year)
            var v = [Float](repeating: .nan, count: s)
            let offset = v.withUnsafeMutableBufferPointer { map.features(of: item.attributes, into: $0.baseAddress!) }
            for k in 0..<4 { worst = max(worst, abs(v[k] - item.vector[k])) }
            worst = max(worst, abs(offset - item.offset))
            #expect(abs(v[4] - 1) < 1e-3, "the bias's constant stays 1, got \(v[4])")
            #expect(v[Self.d...].allSatisfy { $0 == 0 }, "padding stays zero")
        }
        #expect(worst < 0.15, "largest error \(worst)")
    }

    @Test func anItemWithoutAttributesGetsTheMeanItem() throws {
        let truth = Truth(seed: 3)
        let (features, attributes) = Self.items(truth, n: 300, seed: 2)
        let map = try HashedAttributeFeatures.fit(features: features, attributes: { attributes[$0] }, buckets: 512)
        let s = VectorKernels.paddedStride(Self.d)
        // The mean over the training items' attributes: what the centred fit's constant means.
        var mean = [Double](repeating: 0, count: Self.d + 1)
        var v = [Float](repeating: 0, count: s)
        for a in attributes {
            let o = v.withUnsafeMutableBufferPointer { map.features(of: a, into: $0.baseAddress!) }
            for k in 0..<Self.d { mean[k] += Double(v[k]) / 300 }
            mean[Self.d] += Double(o) / 300
        }
        var table = [Double](repeating: 0, count: Self.d + 1)
        for r in 0..<300 {
            features.withFeatures(item: r) { f, o in
                for k in 0..<Self.d { table[k] += Double(f[k]) / 300 }
                table[Self.d] += Double(o) / 300
            }
        }
        for k in 0...Self.d { #expect(abs(mean[k] - table[k]) < 1e-3, "the fitted vectors average to the table's mean (entry \(k))") }
        #expect(map.dimension == Self.d)
    }

    @Test func requiresTenItemsWithAttributes() {
        let (features, attributes) = Self.items(Truth(seed: 1), n: 30, seed: 1)
        #expect(throws: HashedAttributeFeatures.FitError.self) {
            try HashedAttributeFeatures.fit(features: features, attributes: { $0 < 9 ? attributes[$0] : nil }, buckets: 64)
        }
    }

    @Test func roundTripsThroughItsStoredBytesBitForBit() throws {
        let (features, attributes) = Self.items(Truth(seed: 5), n: 200, seed: 9)
        let map = try HashedAttributeFeatures.fit(features: features, attributes: { attributes[$0] }, buckets: 256)
        let read = try ComputedFeatureKinds.decode(kind: HashedAttributeFeatures.kind, map.encoded())
        #expect(read as? HashedAttributeFeatures == map)
        let text: ItemAttributes = ["title": .string("The Long Night, Part 2"), "genres": .strings(["g1"]), "year": .number(2001)]
        let s = VectorKernels.paddedStride(Self.d)
        var a = [Float](repeating: 0, count: s), b = [Float](repeating: 1, count: s)
        let oa = a.withUnsafeMutableBufferPointer { map.features(of: text, into: $0.baseAddress!) }
        let ob = b.withUnsafeMutableBufferPointer { read.features(of: text, into: $0.baseAddress!) }
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern) && oa.bitPattern == ob.bitPattern)
    }

    @Test func unreadableBytesAndUnknownKindsAreErrors() throws {
        let (features, attributes) = Self.items(Truth(seed: 5), n: 50, seed: 9)
        let bytes = try HashedAttributeFeatures.fit(features: features, attributes: { attributes[$0] }, buckets: 32).encoded()
        #expect(throws: (any Error).self) { try HashedAttributeFeatures(encoded: bytes.dropLast(4)) }
        #expect(throws: (any Error).self) { try HashedAttributeFeatures(encoded: Data([1, 0, 0])) }
        #expect(throws: ComputedFeatureKinds.UnknownKind.self) { try ComputedFeatureKinds.decode(kind: "nope", bytes) }
    }

    @Test func textIsTokenizedIntoWordsAndNumbersOfUnknownAttributesAreIgnored() {
        let tokens = HashedAttributeFeatures.tokens(["title": .string("Toy Story (1995)"), "rank": .number(3)], buckets: 1 << 20, numeric: [:])
        // The whole title as a category, and its three words at 1/√3 each; `rank` has no scale.
        #expect(tokens.count == 4)
        #expect(tokens.dropFirst().allSatisfy { abs(abs($0.value) - 1 / Float(3).squareRoot()) < 1e-6 })
    }
}
