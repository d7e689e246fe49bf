import OspreyModel

/// The catalogue: models, their versions (θ, bootstrap prior, training metadata), the ratings a
/// model was first trained on, and each model's exploration policy and running competition.
///
/// Every method is one transaction: a reader sees a change whole or not at all. A version is
/// immutable once inserted; only its status changes. The store keeps no policy of its own: which
/// versions to delete, and what a version's prior is, are decided by the engine
/// (`VersionPolicy`, docs/architecture.md).
public protocol VersionStore: Sendable {
    /// All models, by name.
    func models() throws -> [ModelRecord]

    /// The versions of `model`, oldest first.
    func versions(model: String) throws -> [VersionRecord]

    /// Loads version `number` of `model`.
    /// - Throws: ``StorageError`` `.notFound` or `.corrupt`.
    func loadVersion(model: String, number: Int) throws -> ModelVersion

    /// Stores a version with, when given, the ratings it was trained on, in one transaction.
    /// `serve` makes it the model's serving version (creating the model if new), else its status
    /// is `built`.
    /// - Throws: ``StorageError`` `.conflict` when the model already has that version number.
    func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws

    /// Makes `version` the model's serving version and retires the one it replaces.
    /// - Throws: ``StorageError`` `.notFound` for an unknown version.
    func setServing(model: String, version: Int) throws

    /// Marks the model's versions still `built` (never served) as `failed`; returns their numbers.
    @discardableResult
    func failUnservedVersions(model: String) throws -> [Int]

    /// Deletes versions of `model` from the catalogue (their user weights live in the
    /// ``SnapshotStore``). Unknown numbers are ignored.
    func deleteVersions(model: String, _ numbers: [Int]) throws

    /// The ratings the model was first trained on (stored with its first version), in their
    /// original order. Later versions are trained on these plus the log.
    func initialRatings(model: String) throws -> [Rating]

    /// The items user `uid` rated in the model's training ratings, with repeats. O(log n + rows).
    func trainingItems(model: String, uid: String) throws -> [String]

    /// Erases user `uid`'s ratings from the model's training ratings (a user's erasure,
    /// docs/operations.md "Erasing a user"), in one transaction; returns how many. Versions
    /// already trained keep what they learned; a retrain after it never sees them. Idempotent.
    /// O(log n + rows).
    /// - Throws: ``StorageError`` `.io` when the write fails; then nothing was erased.
    func deleteTrainingRatings(model: String, uid: String) throws -> Int

    /// Each model's running competition.
    func competitions() throws -> [String: CompetitionRecord]

    /// Starts (or, with nil, ends) the model's competition; the challenger's status is
    /// `challenger` while it competes, `retired` after.
    /// - Throws: ``StorageError`` `.notFound` for an unknown model or challenger version.
    func setCompetition(model: String, _ record: CompetitionRecord?) throws

    /// Makes the challenger the serving version and ends the competition, in one transaction.
    func promoteChallenger(model: String, version: Int) throws

    /// Each model's exploration policy, in its API form.
    func explorationPolicies() throws -> [String: String]

    /// Sets a model's exploration policy (its API form).
    /// - Throws: ``StorageError`` `.notFound` for an unknown model.
    func setExplorationPolicy(model: String, policy: String) throws
}
