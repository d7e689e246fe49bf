import OspreyModel

/// The catalogue: models, their versions (θ, bootstrap prior, training metadata), the ratings a
/// model was first trained on, each model's exploration policy and running competition, and
/// each model's items (their attributes and hidden flag).
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

    /// Creates or replaces items of `model`'s catalogue (attributes and hidden flag as given), in
    /// one transaction, durable when it returns. A replaced item keeps its place in
    /// ``catalogueItems(model:)``'s order; a new one goes last. When one id appears more than once
    /// in `items`, the last one wins (and the item's place is that of its first write). The model
    /// need not have a version yet. O(items · log catalogue).
    /// - Throws: ``StorageError`` `.io` when the write fails, or an attribute is a number JSON
    ///   cannot hold (not finite, which ``AttributeRules`` rejects first); then nothing was written.
    func putItems(model: String, _ items: [CatalogueItem]) throws

    /// Hides or shows item `item` of `model`'s catalogue, in one transaction; returns false (and
    /// writes nothing) when the catalogue does not hold it. Idempotent. O(log catalogue).
    /// - Throws: ``StorageError`` `.io` when the write fails; then nothing was written.
    func setItemHidden(model: String, item: String, hidden: Bool) throws -> Bool

    /// The model's catalogue in the order items were first written (empty for an unknown model).
    /// O(items).
    /// - Throws: ``StorageError`` `.corrupt` when an item's stored attributes are unreadable.
    func catalogueItems(model: String) throws -> [CatalogueItem]

    /// Item `id` of the model's catalogue, or nil. O(log items).
    /// - Throws: ``StorageError`` `.corrupt` when its stored attributes are unreadable.
    func catalogueItem(model: String, id: String) throws -> CatalogueItem?

    /// The items of the model's catalogue written after `revision`, in the order they were
    /// written, and the catalogue's revision as of the read: each ``putItems(model:_:)`` or
    /// ``setItemHidden(model:item:hidden:)`` that writes an item raises the model's revision by
    /// one, and the items it wrote carry it. Writers take turns,
    /// so a reader that asks again after the revision it got misses no write (how cluster nodes
    /// follow each other's item writes; docs/operations.md, "Partitioned serving").
    /// O(changes + log items).
    /// - Throws: ``StorageError`` `.corrupt` when an item's stored attributes are unreadable.
    func catalogueChanges(model: String, after revision: Int64) throws -> (items: [CatalogueItem], revision: Int64)
}
