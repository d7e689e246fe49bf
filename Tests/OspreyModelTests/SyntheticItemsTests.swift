import Foundation
import OspreyMath
import Testing
@testable import OspreyModel

struct SyntheticItemsTests {
    @Test func itemsFileRoundTripsThroughTheReader() throws {
        let data = try SyntheticRatings(.init(users: 50, items: 40, ratings: 300, dimension: 3, seed: 3, attributeShare: 0.6))
        let items = try #require(data.catalogue).items
        #expect(items.map(\.id) == (0..<40).map { "i\($0)" })
        #expect(Set(data.ratings().map(\.item)).isSubset(of: items.map(\.id)))
        let csv = SyntheticItems.csv(items)
        #expect(csv.hasPrefix("item,title,genres,studio,year\n"))
        // Some titles need quotes (`Silent River, The`) and some items have several genres.
        #expect(csv.contains(", The\","))
        #expect(items.contains { if case .strings(let g) = $0.attributes["genres"] { g.count > 1 } else { false } })
        #expect(try ItemsReader().parse(text: csv) == items)
    }

    /// The writer quotes what needs it and leaves a missing attribute's cell empty.
    @Test func csvQuotesWhatNeedsIt() throws {
        let items = [
            CatalogueItem(id: "a", attributes: ["title": .string("Say \"Hi\", again\nplease"), "genres": .strings(["x", "y"]), "year": .number(1999.5)]),
            CatalogueItem(id: "b,c", attributes: ["studio": .string("S"), "genres": .strings(["z"])]),
        ]
        let csv = SyntheticItems.csv(items)
        #expect(csv == "item,title,genres,studio,year\na,\"Say \"\"Hi\"\", again\nplease\",x|y,,1999.5\n\"b,c\",,z,S,\n")
        #expect(try ItemsReader().parse(text: csv) == items)
    }

    /// A ridge regression from one-hot genres and studio and the year to the true item vectors
    /// explains about the share asked for, and more for a larger share.
    @Test func attributesExplainTheirShare() throws {
        var fits: [Double] = []
        for share in [0.0, 0.2, 0.6, 0.9] {
            let data = try SyntheticRatings(.init(users: 10, items: 3000, ratings: 10, dimension: 4, seed: 5, attributeShare: share))
            let r2 = try Self.explained(data.itemFactors, by: #require(data.catalogue).items, dimension: 4)
            if share == 0.2 || share == 0.6 { #expect(abs(r2 - share) < 0.1, "share \(share): R² \(r2)") }
            fits.append(r2)
        }
        #expect(fits == fits.sorted() && fits[0] < 0.1 && fits[3] > 0.8, "R² \(fits)")
    }

    /// Attributes change the item vectors only: the users, the biases and the ratings' draws stay,
    /// and with a share of 0 the item vectors are the ones drawn without attributes.
    @Test func attributesChangeOnlyTheItemVectors() throws {
        let plain = try SyntheticRatings(.init(users: 60, items: 30, ratings: 400, dimension: 3, seed: 8))
        let none = try SyntheticRatings(.init(users: 60, items: 30, ratings: 400, dimension: 3, seed: 8, attributeShare: 0))
        let some = try SyntheticRatings(.init(users: 60, items: 30, ratings: 400, dimension: 3, seed: 8, attributeShare: 0.6))
        #expect(plain.catalogue == nil)
        #expect(none.itemFactors == plain.itemFactors && none.ratings() == plain.ratings())
        #expect(some.userFactors == plain.userFactors && some.itemBiases == plain.itemBiases)
        #expect(some.itemFactors != plain.itemFactors)
        #expect(some.ratings().map(\.item) == plain.ratings().map(\.item))
        #expect(some.catalogue?.items == none.catalogue?.items)
        let again = try SyntheticRatings(.init(users: 60, items: 30, ratings: 400, dimension: 3, seed: 8, attributeShare: 0.6))
        #expect(again.itemFactors == some.itemFactors && again.catalogue?.items == some.catalogue?.items)
        for bad in [-0.1, 1.5, .nan] {
            #expect(throws: SyntheticRatings.ConfigurationError.self) { try SyntheticRatings(.init(attributeShare: bad)) }
        }
    }

    /// R² of a ridge fit (λ = 1) from [1, genre indicators, studio indicators, standardized year]
    /// to `factors`, pooled over the dimensions.
    static func explained(_ factors: [Double], by items: [CatalogueItem], dimension d: Int) throws -> Double {
        let genres = SyntheticItems.genreNames, studios = SyntheticItems.studioNames
        let p = 1 + genres.count + studios.count + 1
        var gram = [Double](repeating: 0, count: p * p), cross = [Double](repeating: 0, count: p * d)
        var rows: [[Double]] = []
        for (i, item) in items.enumerated() {
            var x = [Double](repeating: 0, count: p)
            x[0] = 1
            if case .strings(let list)? = item.attributes["genres"] {
                for g in list { x[1 + genres.firstIndex(of: g)!] = 1 }
            }
            if case .string(let s)? = item.attributes["studio"] { x[1 + genres.count + studios.firstIndex(of: s)!] = 1 }
            if case .number(let year)? = item.attributes["year"] { x[p - 1] = (year - 1987) / 20 }
            for a in 0..<p where x[a] != 0 {
                for b in 0..<p { gram[a * p + b] += x[a] * x[b] }
                for k in 0..<d { cross[a * d + k] += x[a] * factors[i * d + k] }
            }
            rows.append(x)
        }
        for a in 0..<p { gram[a * p + a] += 1 }
        var residual = 0.0, total = 0.0
        for k in 0..<d {
            let w = try Cholesky.solve(gram, n: p, (0..<p).map { cross[$0 * d + k] })
            let mean = (0..<items.count).reduce(0.0) { $0 + factors[$1 * d + k] } / Double(items.count)
            for (i, x) in rows.enumerated() {
                let fit = zip(w, x).reduce(0.0) { $0 + $1.0 * $1.1 }
                residual += (factors[i * d + k] - fit) * (factors[i * d + k] - fit)
                total += (factors[i * d + k] - mean) * (factors[i * d + k] - mean)
            }
        }
        return 1 - residual / total
    }
}
