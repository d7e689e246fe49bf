import ArgumentParser
import Foundation
import OspreyEngine
import OspreyModel
import OspreyStorage

/// `osprey train`: fit version 1 of a model from a ratings file and store it.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a new model by ALS from a ratings file and store it as version 1.",
        discussion: """
            Reads MovieLens u.data, ratings.dat, or CSV with a header (format detected). With --items, \
            also reads the items' attributes (a CSV with a header: the item id, then one column per \
            attribute, `|` between the values of a multi-valued column, as MovieLens movies.csv), \
            stores them as the model's catalogue and fits the attribute map that scores items no \
            one has rated.
            """)

    @Option(help: "Data directory (created if missing).") var dataDir = "osprey-data"
    @Option(help: StoreLocation.help) var store: String?
    @Option(help: "Model name.") var model: String
    @Option(help: "Ratings file.") var ratings: String
    @Option(help: "Items file: CSV with a header, the item id first, then the attributes (optional).")
    var items: String?
    @Option(help: "Largest label magnitude a rating may have (a line with a label outside -N...N is an error); serve with the same --max-abs-label.")
    var maxAbsLabel = InputRules.defaultMaxAbsLabel
    @OptionGroup var training: TrainingOptions
    @Option(help: "How top-k answers explore: greedy, epsilon_greedy(ε), linucb(α) or thompson(σ) (change it later with PUT /v1/models/NAME/exploration).")
    var exploration = "greedy"

    func validate() throws {
        do { _ = try ExplorationPolicy.parse(exploration) } catch { throw ValidationError("--exploration: \(error)") }
        try validateMaxAbsLabel(maxAbsLabel)
    }

    func run() throws {
        try train(in: try StoreLocation(dataDir: dataDir, store: store), model: model, ratingsPath: ratings, itemsPath: items, configuration: training.configuration,
                  exploration: try ExplorationPolicy.parse(exploration), rules: InputRules(maxAbsLabel: maxAbsLabel))
    }
}

/// Trains `model` from `ratingsPath` (and the items' attributes in `itemsPath`) into the store in
/// `location`, printing progress.
func train(in location: StoreLocation, model: String, ratingsPath: String, itemsPath: String? = nil, configuration: Trainer.Configuration,
           exploration: ExplorationPolicy = .greedy, rules: InputRules = .init()) throws {
    try validateModelName(model)
    // The items file is checked before anything is created.
    let catalogue = try itemsPath.map { try readCatalogue($0, option: "--items", rules: rules) } ?? []
    let store = try location.open()
    if let existing = try store.versions.models().first(where: { $0.name == model }) {
        throw ValidationError("model `\(model)` already exists in \(location.name) (serving version \(existing.servingVersion)); choose another --model name")
    }
    let read = try readRatings(ratingsPath, rules: rules)
    Console.info("read \(read.ratings.count) ratings from \(ratingsPath) (\(read.format.rawValue))")
    let trainer = Trainer(configuration: configuration) { Console.info($0) }
    var result: Trainer.Result
    do {
        result = try trainer.train(model: model, number: 1, parent: nil, ratings: read.ratings)
    } catch let e as Trainer.ConfigurationError {
        throw ValidationError(e.description)
    }
    try storeFirstVersion(&result, in: store, at: location.name, ratings: read.ratings, catalogue: catalogue, exploration: exploration)
}

/// Fits the attribute map on `catalogue` (when it has items), stores it as the model's catalogue
/// and `result` as the model's serving version 1 with its users' states, a chunk at a time (a
/// million users' d×d states would not fit in memory together), and sets its exploration
/// policy, printing progress.
func storeFirstVersion(_ result: inout Trainer.Result, in store: Stores, at place: String, ratings: [Rating], catalogue: [CatalogueItem],
                       exploration: ExplorationPolicy) throws {
    let model = result.model
    if !catalogue.isEmpty {
        let attributes = Dictionary(catalogue.map { ($0.id, $0.attributes) }, uniquingKeysWith: { $1 })
        result.fitAttributeMap(attributes: { attributes[$0] }) { Console.info($0) }
        try store.versions.putItems(model: model, catalogue)
    }
    var stored = 0
    let total = result.users.count
    try store.storeVersion(result, reflecting: try store.log.lastSequence(), trainingRatings: ratings, serve: true, each: { _, _ in
        stored += 1
        if stored % 100_000 == 0, stored < total { Console.info("stored \(stored) of \(total) users' states") }
    })
    try store.versions.setExplorationPolicy(model: model, policy: exploration.description)
    Console.info("stored \(model) v1 in \(place): \(total) users, \(result.features.catalog.count) \(result.metadata.trigger == "import" ? "imported" : "trained") items"
        + (catalogue.isEmpty ? "" : ", \(catalogue.count) catalogue items") + ", exploration \(exploration)")
}

/// A model name: what the API's paths can carry.
func validateModelName(_ model: String) throws {
    guard EmptyModel.isValidName(model) else {
        throw ValidationError("--model must be a name of 1 to \(EmptyModel.maxNameLength) characters, without `/` or control characters")
    }
}

/// Reads a catalogue (items' attributes) from the CSV at `path`, errors named by `option`.
func readCatalogue(_ path: String, option: String, rules: InputRules) throws -> [CatalogueItem] {
    let catalogue: [CatalogueItem]
    do {
        catalogue = try ItemsReader(rules: rules).read(path: path)
    } catch {
        throw ValidationError("\(option): \(error)")
    }
    Console.info("read \(catalogue.count) items from \(path)")
    return catalogue
}
