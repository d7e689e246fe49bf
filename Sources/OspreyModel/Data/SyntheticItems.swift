import Foundation
import OspreyMath

/// Synthetic catalogue items whose attributes explain a known share of each item's true latent
/// vector, so cold-start scoring (from attributes alone) has a known answer.
///
/// Item `i<k>` has `genres` (1 to 3 of ``genreNames``, a list), a `studio` (one of
/// ``studioNames``), a numeric `year` (``years``) and a `title` of 1 to 3 words from a small
/// vocabulary, which explains nothing. Each genre and studio has its own latent vector
/// `~ N(0, I)`, and the year one that is scaled by the standardized year; an item's attribute part
/// is the sum of its values' vectors, centred and scaled to unit variance per dimension over the
/// items (``attributeFactors``). ``SyntheticRatings`` mixes it with an independent part:
/// `q_i = d^-1/4 (√s a_i + √(1 − s) e_i)`, so a linear map from one-hot genres and studio and the
/// year to item vectors explains about a share `s` of their variance.
public struct SyntheticItems: Sendable {
    /// The genres an item draws from (MovieLens's, with `Family`).
    public static let genreNames = [
        "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Family",
        "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
        "Western",
    ]
    /// The studios an item draws from: `Studio 1` to `Studio 50`.
    public static let studioNames = (1...50).map { "Studio \($0)" }
    /// The years an item's `year` is drawn from, uniformly.
    public static let years = 1950...2024
    /// The columns ``csv(_:)`` writes, the item id first.
    public static let columns = ["item", "title", "genres", "studio", "year"]
    private static let titleWords = [
        "Silent", "River", "Night", "Blue", "Empire", "Last", "Summer", "Garden", "Iron", "Shadow", "Winter",
        "Road", "Golden", "Storm", "Little", "House", "Secret", "City", "Long", "Journey", "Red", "Moon",
        "Broken", "Glass", "Wild", "Heart", "Distant", "Star", "Paper", "Kingdom",
    ]

    /// The items `i0, i1, …` with their attributes, in id order.
    public let items: [CatalogueItem]
    /// The part of each item's latent vector its attributes determine, `items × dimension`:
    /// centred and scaled to unit variance per dimension over the items (all zero for one item).
    public let attributeFactors: [Double]

    /// Draws `count` items and their attribute part in `dimension` dimensions; the same arguments
    /// always give the same items. O(count · dimension).
    /// - Precondition: `count` and `dimension` are positive.
    public init(count: Int, dimension d: Int, seed: UInt64) {
        precondition(count > 0 && d > 0, "count and dimension must be positive")
        var rng = SplitMix64(seed: seed)
        let genreVectors = (0..<(Self.genreNames.count * d)).map { _ in rng.nextGaussian() }
        let studioVectors = (0..<(Self.studioNames.count * d)).map { _ in rng.nextGaussian() }
        let yearVector = (0..<d).map { _ in rng.nextGaussian() }
        let yearMean = Double(Self.years.lowerBound + Self.years.upperBound) / 2
        let yearSpread = Double(Self.years.count) / 12.squareRoot()

        var items: [CatalogueItem] = []
        items.reserveCapacity(count)
        var part = [Double](repeating: 0, count: count * d)
        for i in 0..<count {
            var genres: [Int] = []
            let genreCount = 1 + Int(rng.next() % 3)
            while genres.count < genreCount {
                let g = Int(rng.next() % UInt64(Self.genreNames.count))
                if !genres.contains(g) { genres.append(g) }
            }
            genres.sort()
            let studio = Int(rng.next() % UInt64(Self.studioNames.count))
            let year = Self.years.lowerBound + Int(rng.next() % UInt64(Self.years.count))
            let z = (Double(year) - yearMean) / yearSpread
            for k in 0..<d {
                var x = studioVectors[studio * d + k] + z * yearVector[k]
                for g in genres { x += genreVectors[g * d + k] }
                part[i * d + k] = x
            }
            items.append(CatalogueItem(id: "i\(i)", attributes: [
                "title": .string(Self.title(&rng)),
                "genres": .strings(genres.map { Self.genreNames[$0] }),
                "studio": .string(Self.studioNames[studio]),
                "year": .number(Double(year)),
            ]))
        }
        // Unit variance per dimension over these items, so the share is the share of variance.
        for k in 0..<d {
            var mean = 0.0
            for i in 0..<count { mean += part[i * d + k] }
            mean /= Double(count)
            var variance = 0.0
            for i in 0..<count { variance += (part[i * d + k] - mean) * (part[i * d + k] - mean) }
            variance /= Double(count)
            let inverse = variance > 0 ? 1 / variance.squareRoot() : 0
            for i in 0..<count { part[i * d + k] = (part[i * d + k] - mean) * inverse }
        }
        self.items = items
        attributeFactors = part
    }

    /// One to three title words; a title that starts with `The` is written as MovieLens writes
    /// it, `Silent River, The`, so titles need quoting in CSV.
    private static func title(_ rng: inout SplitMix64) -> String {
        let words = (0...Int(rng.next() % 3)).map { _ in titleWords[Int(rng.next() % UInt64(titleWords.count))] }
        let title = words.joined(separator: " ")
        return rng.next() % 4 == 0 ? title + ", The" : title
    }

    /// Item vectors `scale · (√share · attributeFactors + √(1 − share) · independent)`, where
    /// `independent` is `scale` times a standard normal part (as ``SyntheticRatings`` draws item
    /// factors). O(items · dimension).
    /// - Precondition: `independent` has as many values as ``attributeFactors``.
    public func mix(independent: [Double], share: Double, scale: Double) -> [Double] {
        precondition(independent.count == attributeFactors.count, "one independent value per attribute factor")
        let a = share.squareRoot() * scale, e = (1 - share).squareRoot()
        return zip(attributeFactors, independent).map { a * $0 + e * $1 }
    }

    /// Items as CSV with the header `item,title,genres,studio,year` (``columns``), lists joined
    /// with `|`, values quoted where RFC 4180 needs it, numbers written as integers when they are
    /// whole; a missing attribute is an empty cell. ``ItemsReader`` reads it back. O(total size).
    public static func csv(_ items: [CatalogueItem]) -> String {
        var s = columns.joined(separator: ",") + "\n"
        s.reserveCapacity(items.count * 48)
        for item in items {
            s += quoted(item.id)
            for name in columns.dropFirst() {
                s += ","
                switch item.attributes[name] {
                case nil: break
                case .string(let text): s += quoted(text)
                case .strings(let list): s += quoted(list.joined(separator: "|"))
                case .number(let x): s += x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : "\(x)"
                }
            }
            s += "\n"
        }
        return s
    }

    /// A CSV value, in quotes (with quotes doubled) when it holds a comma, a quote or a line break.
    static func quoted(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0.isNewline }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
