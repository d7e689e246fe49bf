import ArgumentParser
import Foundation
import OspreyModel
import OspreyStorage

/// `osprey train`: fit version 1 of a model from a ratings file and store it.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a new model by ALS from a ratings file and store it as version 1.",
        discussion: "Reads MovieLens u.data, ratings.dat, or CSV with a header (format detected).")

    @Option(help: "Data directory (created if missing).") var dataDir = "osprey-data"
    @Option(help: "Model name.") var model: String
    @Option(help: "Ratings file.") var ratings: String
    @Option(help: "Latent factors d.") var dim = 20
    @Option(help: "Ridge penalty λ; default: chosen by validation on each user's latest 10%.") var lambda: Float?
    @Flag(help: "With --lambda: penalize each user and item by lambda times its number of ratings (ALS-WR).") var scaleLambda = false
    @Option(help: "ALS iterations.") var iterations = 10
    @Option(help: "Random seed of the initialization.") var seed: UInt64 = 1

    func run() throws {
        if scaleLambda && lambda == nil { throw ValidationError("--scale-lambda needs --lambda") }
        try train(dataDir: dataDir, model: model, ratingsPath: ratings, configuration: .init(
            factors: dim, lambda: lambda, scaleLambda: scaleLambda, iterations: iterations, seed: seed))
    }
}

/// Trains `model` from `ratingsPath` into the store in `dataDir`, printing progress.
func train(dataDir: String, model: String, ratingsPath: String, configuration: Trainer.Configuration) throws {
    guard !model.isEmpty, model.utf8.count <= 128, !model.contains("/") else {
        throw ValidationError("--model must be a non-empty name of at most 128 bytes without `/`")
    }
    let store = try SQLiteStore(directory: dataDir)
    if let existing = try store.models().first(where: { $0.name == model }) {
        throw ValidationError("model `\(model)` already exists in \(dataDir) (serving version \(existing.servingVersion)); choose another --model name")
    }
    let read: (ratings: [Rating], format: RatingsFormat)
    do {
        read = try RatingsReader(progress: Console.fileProgress("reading \(ratingsPath)")).read(path: ratingsPath)
    } catch let e as RatingsFileError {
        throw ValidationError(e.description)
    }
    Console.info("read \(read.ratings.count) ratings from \(ratingsPath) (\(read.format.rawValue))")
    let trainer = Trainer(configuration: configuration) { Console.info($0) }
    let result: Trainer.Result
    do {
        result = try trainer.train(model: model, number: 1, parent: nil, ratings: read.ratings)
    } catch let e as Trainer.ConfigurationError {
        throw ValidationError(e.description)
    }
    try store.createVersion(
        result.version, users: result.users.map { ($0.uid, UserWeights(ridge: $0.state, bootstrapped: false)) },
        reflecting: try store.lastSequence(), trainingRatings: read.ratings, serve: true)
    Console.info("stored \(model) v1 in \(store.path): \(result.users.count) users, \(result.version.features.catalog.count) items")
}
