import OspreyModel

/// A batch layer outside the engine that fits a retrain's factors (Velox §4.2 runs it on Spark;
/// docs/operations.md, "Retraining on Spark"). A retrain job hands it what the built-in ALS would
/// train on, with the serving version's hyperparameters, and makes the version of the factors it
/// returns as ``FactorImport`` does: the rest of the job (store, load, swap) is a retrain's.
public protocol ExternalTrainer: Sendable {
    /// Fits the model `prediction(u, i) = μ + b_i + [p_u; c_u] · [q_i; 1]` to `request.ratings`:
    /// items' vectors `[q_i; 1]` with offsets `μ + b_i`, users' weights `[p_u; c_u]`. Runs on
    /// the retrain's background queue.
    /// - Throws: anything, which fails the retrain; the serving version stays as it is.
    ///   ``Trainer/Cancelled`` once `request.isCancelled()` says so.
    func train(_ request: ExternalTrainingRequest) throws -> ExternalTrainingResult
}

/// What an ``ExternalTrainer`` is asked to fit: the retrain's ratings and the serving version's
/// hyperparameters.
public struct ExternalTrainingRequest: Sendable {
    public var model: String
    /// The number the new version gets.
    public var number: Int
    /// The model's initial ratings and its log, without the validation sample, as a built-in
    /// retrain gathers them.
    public var ratings: [Rating]
    /// Latent factors d (vectors have d + 1 entries with the biases).
    public var factors: Int
    /// The serving version's penalty, kept as it is (an external fit does not validate λ).
    public var regularization: Regularization
    public var iterations: Int
    public var seed: UInt64
    /// Reports the iteration reached, shown on the retrain job.
    public var onIteration: @Sendable (Int) -> Void
    /// True once the retrain job was asked to cancel.
    public var isCancelled: @Sendable () -> Bool
}

/// Factors an ``ExternalTrainer`` fitted, and the lineage its version records.
public struct ExternalTrainingResult: Sendable {
    /// The items' vectors `[q_i; 1]`, with offsets `μ + b_i`.
    public var items: ImportedFactors
    /// The users' weights `[p_u; c_u]`; nil fits each user to its ratings under the items.
    public var users: ImportedFactors?
    /// What the version's metadata records as its source: the engine and how it ran
    /// (``TrainingMetadata/source``).
    public var source: String

    public init(items: ImportedFactors, users: ImportedFactors?, source: String) {
        self.items = items
        self.users = users
        self.source = source
    }
}
