import Foundation

/// What was done to make a version: its hyperparameters and how well it fit.
public struct TrainingMetadata: Sendable, Codable, Equatable {
    /// Latent factors d (the feature vectors have d + 1 entries with the bias).
    public var factors: Int
    public var lambda: Float
    /// True when each user's and item's penalty was λ times its rating count (ALS-WR).
    public var scaledLambda: Bool
    /// How λ was chosen: `"given"`, or the validation RMSE of each candidate.
    public var lambdaSelection: String
    public var iterations: Int
    public var seed: UInt64
    /// RMSE on the ratings it was fitted to (nil for factors imported without ratings).
    public var trainingRMSE: Double?
    /// RMSE on the held-out slice used to choose λ (nil when λ was given).
    public var validationRMSE: Double?
    public var ratings: Int
    public var durationSeconds: Double
    /// The span of the observation log the version was trained on: observations with sequence
    /// numbers up to this one (nil when it was trained on a ratings file alone).
    public var trainedThroughSeq: Int64?
    /// What started the training: `train` (a ratings file), `request` (a retrain asked for),
    /// `staleness` (an automatic retrain) or `import` (factors trained elsewhere); nil for a
    /// version trained before this was recorded.
    public var trigger: String?
    /// Where θ came from when it was not trained here: the imported files and what they held
    /// (``FactorImport/source``); nil for a version Osprey trained.
    public var source: String?

    public init(factors: Int, lambda: Float, scaledLambda: Bool, lambdaSelection: String, iterations: Int, seed: UInt64,
                trainingRMSE: Double?, validationRMSE: Double?, ratings: Int, durationSeconds: Double,
                trainedThroughSeq: Int64? = nil, trigger: String? = nil, source: String? = nil) {
        self.source = source
        self.factors = factors
        self.lambda = lambda
        self.scaledLambda = scaledLambda
        self.lambdaSelection = lambdaSelection
        self.iterations = iterations
        self.seed = seed
        self.trainingRMSE = trainingRMSE
        self.validationRMSE = validationRMSE
        self.ratings = ratings
        self.durationSeconds = durationSeconds
        self.trainedThroughSeq = trainedThroughSeq
        self.trigger = trigger
    }
}

/// An immutable version of a model (docs/architecture.md, "Vocabulary"): the feature parameters θ (here a materialized
/// table), the ridge penalty online learning uses, the bootstrap prior, and training metadata.
/// A model serves exactly one version at a time; a new version is swapped in whole. It is a
/// class so a reader takes it with one reference count, whatever the size of θ.
public final class ModelVersion: Sendable {
    public let model: String
    public let number: Int
    public let createdAt: Date
    /// θ: the item feature table and offsets of the items the version was trained on.
    public let features: MaterializedFeatures
    /// θ's computed part, when the catalogue had attributes to fit it on: the feature function
    /// of every item without a trained vector (``ComputedFeatureFunction``). Stored with the
    /// version.
    public let computed: (any ComputedFeatureFunction)?
    /// The feature function of every item without a trained vector: ``computed``, or, without
    /// one, the mean trained item (``MeanItemFeatures``).
    public let computedFeatures: any ComputedFeatureFunction
    /// The ridge penalty of a new user's regression: how strongly the prior holds against the
    /// first observations.
    public let lambda: Float
    /// The mean of all trained users' weights: a new user's starting point (Velox §5).
    public let prior: [Float]
    public let metadata: TrainingMetadata
    public let parent: Int?

    public init(model: String, number: Int, createdAt: Date, features: MaterializedFeatures,
                computed: (any ComputedFeatureFunction)? = nil, lambda: Float,
                prior: [Float], metadata: TrainingMetadata, parent: Int?) {
        precondition(prior.count == features.dimension, "prior must have one weight per feature")
        precondition(computed == nil || computed!.dimension == features.dimension,
                     "a computed feature function must have the table's dimension")
        self.computed = computed
        computedFeatures = computed ?? MeanItemFeatures(features)
        self.model = model
        self.number = number
        self.createdAt = createdAt
        self.features = features
        self.lambda = lambda
        self.prior = prior
        self.metadata = metadata
        self.parent = parent
    }

    /// The feature-vector length (and the user-weight length).
    public var dimension: Int { features.dimension }
}
