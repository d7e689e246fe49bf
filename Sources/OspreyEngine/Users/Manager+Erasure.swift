import OspreyModel
import OspreyStorage

/// What a user's erasure deleted, per store.
public struct UserErasure: Sendable, Equatable {
    /// The user's observations of the model erased from the log.
    public var observations: Int
    /// Snapshot rows: the user's states (one per version), observed items and hot-user records.
    public var snapshotRows: Int
    /// Logged decisions (buffered ones included) and competition allocations.
    public var decisions: Int
    /// Ratings of the user among the model's training ratings.
    public var trainingRatings: Int

    public init(observations: Int, snapshotRows: Int, decisions: Int, trainingRatings: Int) {
        self.observations = observations
        self.snapshotRows = snapshotRows
        self.decisions = decisions
        self.trainingRatings = trainingRatings
    }
}

extension Manager {
    /// Erases user `uid` from model `name` (docs/operations.md, "Erasing a user"): its
    /// observations from the log, its rows from every version's snapshot, its decisions and
    /// allocations, its training ratings; then, in every state learning live (the serving one
    /// and a challenger's), its weights, observed items and allocation, and every cached answer.
    /// The user is then served as one never seen, bootstrapped from the prior.
    ///
    /// Runs while no retrain stores or swaps in a version (``ServedModel/erasing``; a retrain that
    /// gathered before the erasure finished trains again), while no snapshot writes
    /// (``LearningProgress/snapshotWrites``) and under the learning lock, so no observation of the
    /// user is learned and no captured state of it is written meanwhile. Observations committed
    /// but not yet learned when it takes the lock stay: they come after the erasure, and are
    /// learned as a new user's. The stores are erased first, the log first of them, then memory:
    /// a store that fails stops the call with memory as it was, and since every step is
    /// idempotent, calling again finishes it.
    ///
    /// Learning waits meanwhile: O(the model's observations and decisions) in the stores, which
    /// index neither by user.
    /// - Throws: ``OspreyError`` `unknownModel`, or `unavailable` when a store fails (then call
    ///   again).
    public func eraseUser(model name: String, uid: String) throws -> UserErasure {
        let model = try registry.model(name)
        try registry.cluster?.check(uid)
        do {
            return try erase(uid, of: model)
        } catch let error as StorageError {
            throw OspreyError(.unavailable, "could not erase user `\(uid)` of model `\(name)`: \(error); erasing is idempotent: call again to finish")
        }
    }

    /// ``eraseUser(model:uid:)`` on a background thread of its own (``BackgroundThread``), off
    /// the Swift concurrency pool that serves requests: it waits for the learning lock and scans
    /// the model's log.
    public func eraseUserInBackground(model name: String, uid: String) async throws -> UserErasure {
        try await BackgroundThread.run(name: "osprey-erase") { try self.eraseUser(model: name, uid: uid) }
    }

    private func erase(_ uid: String, of model: ServedModel) throws -> UserErasure {
        try model.erasing.withLock { _ in
            let erased = try eraseUnderLocks(uid, of: model)
            model.erasures.add(1, ordering: .releasing)
            return erased
        }
    }

    private func eraseUnderLocks(_ uid: String, of model: ServedModel) throws -> UserErasure {
        let name = model.name
        return try progress.snapshotWrites.withLock { _ in
            try progress.applied.withLock { learned in
                let observations = try stores.log.deleteUser(model: name, uid: uid, through: learned)
                let decisions = try self.decisions.erase(model: name, uid: uid)
                let snapshotRows = try stores.snapshots.deleteUser(model: name, uid: uid)
                let trainingRatings = try stores.versions.deleteTrainingRatings(model: name, uid: uid)
                model.observationCount.subtract(observations, ordering: .relaxed)
                for state in model.learningStates {
                    state.users.remove(uid)
                    state.observed.remove(uid)
                    state.predictions.invalidateAll()
                }
                model.competition?.forget(uid)
                return UserErasure(observations: observations, snapshotRows: snapshotRows, decisions: decisions,
                                   trainingRatings: trainingRatings)
            }
        }
    }
}
