import Synchronization

/// The models the engine serves, by name: those loaded at start, and those made since
/// (``Manager/createModel(_:)``). Models are added, never removed.
public final class ModelRegistry: Sendable {
    private let models: Mutex<[String: ServedModel]>
    /// Held while a model is made, so two requests for one name cannot both make it; readers
    /// never wait for it.
    let creation = Mutex<Void>(())

    init(models: [ServedModel]) {
        self.models = Mutex(Dictionary(uniqueKeysWithValues: models.map { ($0.name, $0) }))
    }

    /// The served model named `name`. O(1).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func model(_ name: String) throws -> ServedModel {
        guard let m = models.withLock({ $0[name] }) else { throw OspreyError.unknownModel(name) }
        return m
    }

    /// Whether a model named `name` is served. O(1).
    func contains(_ name: String) -> Bool { models.withLock { $0[name] != nil } }

    /// The number of served models. O(1).
    var count: Int { models.withLock { $0.count } }

    /// Serves `model` from now on. O(1) amortized.
    /// - Precondition: no model of its name is served.
    func add(_ model: ServedModel) {
        models.withLock {
            precondition($0[model.name] == nil, "model \(model.name) is served already")
            $0[model.name] = model
        }
    }

    /// All served models, by name.
    public var all: [ServedModel] { models.withLock { Array($0.values) }.sorted { $0.name < $1.name } }
}
