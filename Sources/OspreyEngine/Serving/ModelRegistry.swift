/// The models being served, by name.
public final class ModelRegistry: Sendable {
    private let models: [String: ServedModel]

    init(models: [ServedModel]) {
        self.models = Dictionary(uniqueKeysWithValues: models.map { ($0.name, $0) })
    }

    /// The served model named `name`. O(1).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func model(_ name: String) throws -> ServedModel {
        guard let m = models[name] else { throw OspreyError.unknownModel(name) }
        return m
    }

    /// All served models, by name.
    public var all: [ServedModel] { models.values.sorted { $0.name < $1.name } }
}
