import ArgumentParser
import Foundation
import Logging
import OspreyEngine
import OspreyModel
import OspreyStorage

/// `osprey import`: factors trained elsewhere as a new version of a model (or as version 1 of a
/// new one). The server on the data directory must be stopped, as for `osprey retrain`.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import item factors (and user factors) trained elsewhere, such as a Spark ALSModel's, as a new serving version.",
        discussion: """
            Reads JSON lines {"id": ..., "features": [...]} (an optional "offset" is the item's constant \
            term), as Spark's df.write.json writes an ALSModel's itemFactors and userFactors, or CSV \
            with a header (id, then one column per factor, an optional `offset` column); a path may \
            be a file or a directory of part files. Predictions are users' weights · items' vectors \
            + offset. For a model that exists, the new version's users are fitted to the model's \
            ratings and log under the imported items, or keep their imported weights (--users); its \
            catalogue's attribute map is fitted again. For a new model, --lambda is needed, and \
            --ratings (the history, kept for later retrains) and --attributes are optional. \
            scripts/spark-als-export.py writes a saved Spark ALSModel in this form.
            """)

    @Option(help: "Data directory.") var dataDir = "osprey-data"
    @Option(help: "Model name: an existing model gets a new version; a new name makes version 1.") var model: String
    @Option(help: "The items' vectors: JSON lines or CSV, a file or a directory of part files.") var items: String
    @Option(help: "The users' weights, in the same form (optional: users are otherwise fitted to their ratings).") var users: String?
    @Option(help: "A new model's ratings (its history: users are fitted to them, and retrains start from them).") var ratings: String?
    @Option(help: "A new model's catalogue: items' attributes, CSV with a header as `osprey train --items`.") var attributes: String?
    @Option(help: "Ridge penalty λ of the users' states (Spark's regParam); default: the serving version's. Needed for a new model.")
    var lambda: Float?
    @Flag(help: "Penalize each user by lambda times its number of ratings, as Spark's ALS does.") var scaleLambda = false
    @Option(help: "Largest label magnitude a rating may have (a line with a label outside -N...N is an error).")
    var maxAbsLabel = InputRules.defaultMaxAbsLabel

    func validate() throws {
        try validateModelName(model)
        if let lambda { try Bounds.checkPositive("lambda", Double(lambda)) }
        if scaleLambda && lambda == nil { throw ValidationError("--scale-lambda needs --lambda") }
        try validateMaxAbsLabel(maxAbsLabel)
    }

    func run() async throws {
        let rules = InputRules(maxAbsLabel: maxAbsLabel)
        // Every file is read and checked before anything is stored.
        let itemFactors = try read(items, option: "--items", rules: rules)
        let userFactors = try users.map { try read($0, option: "--users", rules: rules) }
        if let userFactors, userFactors.dimension != itemFactors.dimension {
            throw ValidationError("--users has \(userFactors.dimension) factors a vector and --items \(itemFactors.dimension); they must match")
        }
        // A data directory is created only once a new model's files have been read too.
        if SQLiteStores.exists(in: dataDir) {
            let store = try SQLiteStores(directory: dataDir)
            if try store.versions.models().contains(where: { $0.name == model }) {
                return try await importVersion(items: itemFactors, users: userFactors, store: store)
            }
        }
        try importFirstVersion(items: itemFactors, users: userFactors, rules: rules)
    }

    private func read(_ path: String, option: String, rules: InputRules) throws -> ImportedFactors {
        let factors: ImportedFactors
        do {
            factors = try FactorsReader(rules: rules, progress: Console.fileProgress("reading \(path)") ?? { _, _ in }).read(path: path)
        } catch {
            throw ValidationError("\(option): \(error)")
        }
        Console.info("read \(factors.count) vectors of \(factors.dimension) factors from \(path)")
        return factors
    }

    /// A new version of an existing model, made by a job of the engine's retrainer.
    private func importVersion(items: ImportedFactors, users: ImportedFactors?, store: SQLiteStores) async throws {
        if ratings != nil || attributes != nil {
            throw ValidationError("model `\(model)` exists: its ratings and catalogue are its own (--ratings and --attributes are for a new model)")
        }
        let logger = Console.logger()
        let manager = try Manager(stores: store.stores, configuration: .init(retrainThreads: 2), logger: logger)
        let serving = try manager.info(model: model).versions.first { $0.status == .serving }?.metadata
        let regularization = lambda.map { Regularization(lambda: $0, scaled: scaleLambda) }
            ?? Regularization(lambda: serving?.lambda ?? 1, scaled: serving?.scaledLambda ?? false)
        let factors = FactorImport(items: items, users: users, regularization: regularization)
        try await manager.withServices(logger: logger) {
            let id: Int
            do { id = try manager.retrainer.start(model: model, importing: factors) } catch let e as OspreyError { throw ValidationError(e.message) }
            try await RetrainCommand.follow(job: id, of: model, on: manager, doing: "import")
        }
    }

    /// Version 1 of a new model.
    private func importFirstVersion(items: ImportedFactors, users: ImportedFactors?, rules: InputRules) throws {
        guard let lambda else {
            throw ValidationError("model `\(model)` is new: give its users' ridge penalty with --lambda (with --scale-lambda, Spark's regParam)")
        }
        let catalogue = try attributes.map { try readCatalogue($0, option: "--attributes", rules: rules) } ?? []
        var history: [Rating] = []
        if let ratings {
            let read = try readRatings(ratings, rules: rules)
            history = read.ratings
            Console.info("read \(history.count) ratings from \(ratings) (\(read.format.rawValue))")
        }
        let store = try SQLiteStores(directory: dataDir)
        var result: Trainer.Result
        do {
            result = try FactorImport(items: items, users: users, regularization: .init(lambda: lambda, scaled: scaleLambda))
                .result(model: model, number: 1, parent: nil, ratings: history) { Console.info($0) }
        } catch let e as Trainer.ConfigurationError {
            throw ValidationError(e.description)
        }
        try storeFirstVersion(&result, in: store.stores, at: store.path, ratings: history, catalogue: catalogue, exploration: .greedy)
    }
}
