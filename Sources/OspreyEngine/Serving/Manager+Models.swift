import Foundation
import OspreyModel
import OspreyStorage

/// A model made empty, through `POST /v1/models`: no ratings yet, items scored from their
/// attributes, users learning from their first observation (docs/operations.md, "Models made
/// through the API").
public struct EmptyModel: Sendable {
    /// The model's name.
    public var name: String
    /// Latent factors d: the hashed attribute buckets until the first retrain, then ALS's factors.
    public var factors: Int
    /// The users' ridge penalty; nil: 1 for now, chosen by validation at the first retrain.
    public var lambda: Float?
    /// Every item's offset until the first retrain: what a user with no evidence is predicted.
    public var mean: Float
    /// The scales of numeric attributes (others are ignored until the first retrain).
    public var numeric: [String: HashedAttributeFeatures.NumericScale]
    public var exploration: ExplorationPolicy

    public init(name: String, factors: Int, lambda: Float? = nil, mean: Float = 0,
                numeric: [String: HashedAttributeFeatures.NumericScale] = [:], exploration: ExplorationPolicy = .greedy) {
        self.name = name
        self.factors = factors
        self.lambda = lambda
        self.mean = mean
        self.numeric = numeric
        self.exploration = exploration
    }

    /// The largest d a model may have (as for training).
    public static let maxFactors = 512
    /// The penalties a model may be made with: a smaller one leaves a new user's system near
    /// singular, a larger one learns nothing.
    public static let lambdas: ClosedRange<Float> = 1e-6...1e6
    /// The longest model name, in Unicode scalars (as openapi.yaml's `maxLength` counts).
    public static let maxNameLength = 128

    /// Whether `name` can name a model, wherever one is made (the API, `train`, `import`):
    /// 1 to ``maxNameLength`` characters, without `/` (it is a path segment) or control characters.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.unicodeScalars.count <= maxNameLength && !name.contains("/")
            && !name.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }
}

extension Manager {
    /// Makes and serves version 1 of an empty model: no trained items, its θ the unfitted
    /// attribute map (``HashedAttributeFeatures/unfitted(factors:mean:numeric:)``), no users (each
    /// starts from zero weights), durable before it returns. A retrain with ratings fits ALS and
    /// the attribute map in its place. On a cluster node every node serves it, told by an
    /// announcement. Returns its info.
    /// - Throws: ``OspreyError`` `invalidArgument` for a bad spec, `conflict` when the name is
    ///   taken or the engine serves ``Configuration/maxModels`` already; ``StorageError``.
    @discardableResult
    public func createModel(_ spec: EmptyModel) throws -> ModelInfo {
        try check(spec)
        try registry.creation.withLock { _ in
            guard !registry.contains(spec.name), !(try stores.versions.models().contains { $0.name == spec.name }) else {
                throw OspreyError(.conflict, "model `\(spec.name)` exists already; GET /v1/models/\(spec.name) shows it")
            }
            guard registry.count < configuration.maxModels else {
                throw OspreyError(.conflict, "this server serves \(registry.count) models, its limit (--max-models)")
            }
            let seq = try stores.log.lastSequence()
            let dimension = spec.factors + 1
            let metadata = TrainingMetadata(
                factors: spec.factors, lambda: spec.lambda ?? 1, scaledLambda: false,
                lambdaSelection: spec.lambda == nil ? "none yet: chosen by validation at the first retrain" : "given",
                iterations: 10, seed: 1, trainingRMSE: nil, validationRMSE: nil, ratings: 0, durationSeconds: 0,
                trainedThroughSeq: seq, trigger: "create")
            let version = ModelVersion(
                model: spec.name, number: 1, createdAt: Date(),
                features: MaterializedFeatures(dimension: dimension, ids: [], table: [], offsets: []),
                computed: HashedAttributeFeatures.unfitted(factors: spec.factors, mean: spec.mean, numeric: spec.numeric),
                lambda: spec.lambda ?? 1, prior: [Float](repeating: 0, count: dimension), metadata: metadata, parent: nil)
            try stores.createVersion(version, users: [], reflecting: seq, trainingRatings: [], serve: true)
            try stores.versions.setExplorationPolicy(model: spec.name, policy: spec.exploration.description)
            let metrics = metrics.model(spec.name, featureCache: configuration.featureCache.capacity > 0)
            let (state, _) = try loader.load(model: spec.name, version: 1, continuing: .init(metrics: metrics))
            registry.add(ServedModel(state: state, observations: 0, exploration: spec.exploration, metrics: metrics))
        }
        logger.info("created model", metadata: ["model.name": "\(spec.name)", "model.factors": "\(spec.factors)"])
        // The other nodes of a cluster load it when told (or at their next heartbeat).
        registry.announce("the new model", of: spec.name, logger: logger)
        return try info(model: spec.name)
    }

    private func check(_ spec: EmptyModel) throws {
        guard EmptyModel.isValidName(spec.name) else {
            throw OspreyError(.invalidArgument, "name must be 1 to \(EmptyModel.maxNameLength) characters, without `/` or control characters")
        }
        guard (1...EmptyModel.maxFactors).contains(spec.factors) else {
            throw OspreyError(.invalidArgument, "dimension must be between 1 and \(EmptyModel.maxFactors), got \(spec.factors)")
        }
        if let lambda = spec.lambda, !EmptyModel.lambdas.contains(lambda) {
            throw OspreyError(.invalidArgument, "lambda must be a number from 1e-06 to 1e+06, got \(lambda)")
        }
        do throws(InputRuleViolation) {
            _ = try inputRules.check(label: Double(spec.mean), field: "mean")
        } catch {
            throw OspreyError(error)
        }
        for (attribute, scale) in spec.numeric.sorted(by: { $0.key < $1.key }) {
            guard scale.mean.isFinite, scale.deviation.isFinite, scale.deviation > 0 else {
                throw OspreyError(.invalidArgument, "numeric.\(attribute): mean must be finite and deviation a positive number")
            }
        }
    }
}
