import Foundation
import OspreyMath
import OspreyModel
import OspreyStorage

/// Storing and deleting whole versions: the version's catalogue row and its users' weights live
/// in two stores, written in an order that leaves nothing half-visible if the second write fails.
extension Stores {
    /// Stores a trained version without ever holding all its users' states: each chunk of users
    /// (``UserStates/forEachChunk(size:_:)``) is turned by `stored` into what is stored for each
    /// user (nil: the user is not stored), written to the snapshot store (reflecting the log up
    /// to `seq`) and handed to `each`; then the version goes into the catalogue, its bootstrap
    /// prior the mean of the stored users' weights (``PriorMean``: a user never seen starts
    /// from it). Returns the version as stored. O(users · d³).
    ///
    /// User weights are written first: should the catalogue write fail, they are orphans that
    /// the next attempt at this version number replaces. `chunk` users go in each transaction: a
    /// retrain inside a serving process writes small ones (``Snapshotter/snapshotChunk``), so
    /// that the log's commits never wait behind a large write to the same disk.
    @discardableResult
    public func storeVersion(
        _ trained: Trainer.Result, reflecting seq: Int64, trainingRatings: [Rating], serve: Bool, chunk: Int = 2048,
        stored: (_ uid: String, _ state: RidgeState) -> UserWeights? = { UserWeights(ridge: $1, bootstrapped: false) },
        each: (_ uid: String, _ weights: UserWeights) -> Void = { _, _ in }
    ) throws -> ModelVersion {
        var prior = PriorMean(dimension: trained.features.dimension)
        try snapshots.replaceUsers(model: trained.model, version: trained.number, reflecting: seq) { write in
            try trained.users.forEachChunk(size: chunk) { users in
                var rows: [SnapshotRow] = []
                rows.reserveCapacity(users.count)
                for (uid, state) in users {
                    guard let w = stored(uid, state) else { continue }
                    prior.add(w.ridge)
                    rows.append(SnapshotRow(uid: uid, weights: w, seq: seq))
                    each(uid, w)
                }
                try write(rows)
            }
        }
        let version = trained.version(prior: prior.mean)
        try versions.insertVersion(version, trainingRatings: trainingRatings, serve: serve)
        return version
    }

    /// Stores a version whose users' weights are given whole (their prior already in
    /// `version`), reflecting the log up to `seq`. O(users · d²).
    public func createVersion(_ version: ModelVersion, users: [(uid: String, weights: UserWeights)], reflecting seq: Int64,
                              trainingRatings: [Rating], serve: Bool) throws {
        try snapshots.replaceUsers(model: version.model, version: version.number, reflecting: seq) { write in
            try write(users.map { SnapshotRow(uid: $0.uid, weights: $0.weights, seq: seq) })
        }
        try versions.insertVersion(version, trainingRatings: trainingRatings, serve: serve)
    }

    /// Items' states written per transaction when a version's first ones are stored.
    static let itemStateChunk = 100

    /// Starts each trained item of `version` from its served row with the statistics of
    /// `ratings` (the ratings it was trained on), each with its rater's weights as `userWeights`
    /// gives them (``ItemRidge/trainedStates(features:ratings:userWeights:lambda:scaledLambda:start:threads:)``),
    /// and stores them as reflecting `seq`, so every later start of the version begins from the
    /// same states. Returns them by row of the version's table. A version's first server with
    /// item updates calls it, or its retrain worker. O(ratings · d² + items · d³).
    /// - Throws: what `userWeights` throws; the snapshot store's error when a write fails.
    func startItemStates(of version: ModelVersion, ratings: [Rating], userWeights: (String) throws -> [Float]?, seq: Int64,
                         threads: Int) throws -> [RidgeState] {
        var unreadable: (any Error)?
        let states = try ItemRidge(version: version).trainedStates(
            features: version.features, ratings: ratings,
            userWeights: { uid in
                do { return try userWeights(uid) } catch { unreadable = unreadable ?? error; return nil }
            },
            lambda: version.metadata.lambda, scaledLambda: version.metadata.scaledLambda, threads: threads)
        if let unreadable { throw unreadable }
        var rows: [ItemStateRow] = []
        for (row, state) in states.enumerated() {
            rows.append(ItemStateRow(item: version.features.catalog.ids[row], ridge: state, observations: 0, seq: seq))
            if rows.count == Self.itemStateChunk || row == states.count - 1 {
                try snapshots.saveItemStates(model: version.model, version: version.number, rows: rows, keepingPrevious: false)
                rows.removeAll(keepingCapacity: true)
            }
        }
        return states
    }

    /// Deletes version `number` of `model`, which never served (a retrain worker's version that
    /// will not be installed): its catalogue rows, then its users' weights
    /// (``deleteStoredVersion(model:number:)``).
    public func discardVersion(model: String, number: Int) throws {
        try versions.deleteVersions(model: model, [number])
        try deleteStoredVersion(model: model, number: number)
    }

    /// Deletes the versions ``VersionPolicy/prunable(_:serving:challenger:keep:)`` names: their
    /// catalogue rows first (once gone, a version cannot be loaded, so leftover weights, should
    /// a later step fail, are only unused rows), then their users' weights. Leftovers of an
    /// earlier prune cut short (stored versions the catalogue no longer holds, older than its
    /// newest version: a newer one may be a retrain's, being stored) go too. Returns the
    /// versions whose stored state was deleted, ascending.
    public func pruneVersions(model: String, keep: Int) throws -> [Int] {
        guard let serving = try versions.models().first(where: { $0.name == model })?.servingVersion else { return [] }
        let catalogued = try versions.versions(model: model)
        let doomed = VersionPolicy.prunable(catalogued, serving: serving, challenger: try versions.competitions()[model]?.challenger,
                                            keep: keep)
        if !doomed.isEmpty { try versions.deleteVersions(model: model, doomed) }
        let newest = catalogued.map(\.number).max() ?? serving
        let listed = Set(catalogued.map(\.number))
        let gone = try snapshots.storedVersions(model: model).filter { doomed.contains($0) || ($0 < newest && !listed.contains($0)) }
        for number in gone { try deleteStoredVersion(model: model, number: number) }
        return gone
    }

    /// Rows of a version deleted per transaction (``SnapshotStore/deleteVersion(model:version:limit:)``),
    /// and the pause after each: at 100k users and d = 50 a version is about 1 GB, and deleted
    /// in one transaction its commit held the log's commits behind it (p99 161.6 ms under
    /// durable observes, BENCHMARKS.md "What falls short").
    static let deleteChunk = 256, deletePause = Duration.milliseconds(5)

    /// Deletes everything the snapshot store holds of version `number`, a chunk at a time.
    func deleteStoredVersion(model: String, number: Int) throws {
        while try snapshots.deleteVersion(model: model, version: number, limit: Self.deleteChunk) > 0 {
            Thread.sleep(forTimeInterval: Double(Self.deletePause / .microseconds(1)) / 1e6)
        }
    }
}
