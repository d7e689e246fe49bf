import ArgumentParser
import Foundation
import OspreyModel

/// `osprey generate`: synthetic ratings from a known latent-factor model, and optionally the
/// items' attributes that explain a known share of the item vectors.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Write synthetic ratings (uid,item,label,timestamp CSV) from a known latent-factor model.",
        discussion: """
            With --items-out, also writes every item's attributes (item,title,genres,studio,year CSV, \
            genres joined with |) and draws the item vectors so that genres, studio and year explain \
            --attribute-share of their variance (the title explains nothing): cold-start data with a \
            known answer. Without it the ratings are the same as ever for each seed.
            """)

    @Option(help: "Number of users.") var users = 1000
    @Option(help: "Number of items.") var items = 500
    @Option(help: "Number of ratings.") var ratings = 50_000
    @Option(help: "Latent dimension of the true model.") var dim = 10
    @Option(help: "Standard deviation of the Gaussian label noise.") var noise = 0.5
    @Option(help: "Random seed; the same seed gives the same file.") var seed: UInt64 = 1
    @Option(help: "Zipf exponent of item popularity.") var zipf = 1.0
    @Option(help: "How far users' tastes change, 0 (not at all) to 1 (replaced).") var drift = 0.0
    @Option(help: "Where in the file the tastes change, as a share of the ratings.") var driftAt = 0.5
    @Option(help: "Output file.") var out: String
    @Option(help: ArgumentHelp("Also write the items' attributes (item,title,genres,studio,year CSV) to this file.", valueName: "file"))
    var itemsOut: String?
    @Option(help: "With --items-out: the share of each item vector's variance its attributes explain, 0 to 1 (default 0.6).")
    var attributeShare: Double?

    func validate() throws {
        try Bounds.check("users", users, Bounds.users)
        try Bounds.check("items", items, Bounds.items)
        try Bounds.check("ratings", ratings, Bounds.ratings)
        try Bounds.check("dim", dim, Bounds.dimension)
        try Bounds.check("noise", noise, Bounds.noise)
        try Bounds.check("zipf", zipf, Bounds.zipf)
        try Bounds.check("drift", drift, Bounds.share)
        try Bounds.check("drift-at", driftAt, Bounds.share)
        if let share = attributeShare {
            try Bounds.check("attribute-share", share, Bounds.share)
            guard itemsOut != nil else { throw ValidationError("--attribute-share needs --items-out (the file the attributes are written to)") }
        }
        guard (users + items) * dim <= Bounds.generatedFactors else {
            throw ValidationError("(--users + --items) × --dim must be at most \(Bounds.generatedFactors) (the true model's factors)")
        }
        guard ratings <= users * items / 2 else {
            throw ValidationError("--ratings \(ratings) is more than half of the \(users) × \(items) (user, item) pairs; ask for fewer ratings or more users/items")
        }
    }

    func run() throws {
        let data = try SyntheticRatings.Configuration.make(
            users: users, items: items, ratings: ratings, dim: dim, noise: noise, seed: seed, zipf: zipf,
            drift: drift, driftAt: driftAt, attributeShare: itemsOut == nil ? nil : attributeShare ?? Self.defaultAttributeShare)
        try write(data.ratings(), to: out)
        Console.info("wrote \(ratings) ratings (\(users) users, \(items) items, d=\(dim), noise σ=\(noise), seed \(seed)) to \(out)")
        if let itemsOut, let catalogue = data.catalogue {
            do {
                try SyntheticItems.csv(catalogue.items).write(toFile: itemsOut, atomically: true, encoding: .utf8)
            } catch {
                throw ValidationError("cannot write \(itemsOut): \(error.localizedDescription)")
            }
            Console.info("wrote \(items) items' attributes (attribute share \(attributeShare ?? Self.defaultAttributeShare)) to \(itemsOut)")
        }
    }

    /// The share of item-vector variance the attributes explain unless --attribute-share says.
    static let defaultAttributeShare = 0.6
}

extension SyntheticRatings.Configuration {
    static func make(users: Int, items: Int, ratings: Int, dim: Int, noise: Double, seed: UInt64, zipf: Double,
                     drift: Double = 0, driftAt: Double = 0.5, attributeShare: Double? = nil) throws -> SyntheticRatings {
        do {
            return try SyntheticRatings(.init(
                users: users, items: items, ratings: ratings, dimension: dim, noise: noise, seed: seed, zipfExponent: zipf,
                drift: drift, driftAt: driftAt, attributeShare: attributeShare))
        } catch let e as SyntheticRatings.ConfigurationError {
            throw ValidationError(e.description)
        }
    }
}

func write(_ ratings: [Rating], to path: String) throws {
    do {
        try SyntheticRatings.csv(ratings).write(toFile: path, atomically: true, encoding: .utf8)
    } catch {
        throw ValidationError("cannot write \(path): \(error.localizedDescription)")
    }
}
