import OspreyModel
import OspreyStorage

/// What a retrain's batch steps (``RetrainRun``) read of the version the new one replaces: its
/// θ and hyperparameters, the catalogue's attributes (for the attribute map), each user's running
/// loss (carried into the new version) and, in the serving process, the items users observed
/// that no snapshot has recorded yet. Live from the serving state in the serving process
/// (``init(_:)``); from the stores in a retrain worker (``stored(model:in:)``).
struct RetrainParent: Sendable {
    let model: String
    /// The version serving when the retrain began.
    let version: ModelVersion
    /// The model's item catalogue, whose attributes the attribute map is fitted on.
    let catalogue: ItemCatalogue
    /// A user's running loss as the parent holds it (nil: none yet).
    let runningLoss: @Sendable (String) -> Double?
    /// Items observed that no snapshot has recorded: saved before the version is stored (nil in
    /// a worker, whose server saved them before starting it).
    let observed: ObservedItems?

    /// The serving state of `model`, as it is now.
    init(_ model: ServedModel) {
        let current = model.current
        self.model = model.name
        version = current.version
        catalogue = current.catalogue
        // Read through the model, not kept: the state it replaces must be freed at the swap.
        runningLoss = { uid in model.current.users.read(uid) { $0?.runningLoss } }
        observed = current.observed
    }

    private init(model: String, version: ModelVersion, catalogue: ItemCatalogue, runningLoss: [String: Double]) {
        self.model = model
        self.version = version
        self.catalogue = catalogue
        self.runningLoss = { runningLoss[$0] }
        observed = nil
    }

    /// The version `model` serves according to the stores, with the running losses its users'
    /// rows record (as of their last snapshot). O(users · d) to read the rows.
    /// - Throws: ``OspreyError`` `unknownModel` for a model the stores do not hold; what the
    ///   stores throw.
    static func stored(model: String, in stores: Stores) throws -> RetrainParent {
        guard let serving = try stores.versions.models().first(where: { $0.name == model })?.servingVersion else {
            throw OspreyError(.unknownModel, "the store holds no model `\(model)`")
        }
        let version = try stores.versions.loadVersion(model: model, number: serving)
        var losses: [String: Double] = [:]
        try stores.snapshots.forEachStoredWeights(model: model, version: serving, dimension: version.dimension) { row in
            if let loss = row.runningLoss { losses[row.uid] = loss }
        }
        return RetrainParent(model: model, version: version, catalogue: try ItemCatalogue.stored(in: stores, model: model),
                             runningLoss: losses)
    }
}
