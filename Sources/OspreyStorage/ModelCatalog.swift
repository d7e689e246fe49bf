import Foundation
import OspreyMath
import OspreyModel

/// A version as the catalogue lists it.
public struct VersionRecord: Sendable, Equatable {
    /// `built`: trained and stored, not served yet (a retrain installing it); `failed`: built
    /// but never served, because its install failed or the process stopped first; `challenger`:
    /// competing with the serving version for traffic.
    public enum Status: String, Sendable { case serving, retired, built, failed, challenger }
    public var model: String
    public var number: Int
    public var createdAt: Date
    public var status: Status
    public var parent: Int?
    public var dimension: Int
    public var items: Int
    public var metadata: TrainingMetadata
}

/// A model as the catalogue lists it.
public struct ModelRecord: Sendable, Equatable {
    public var name: String
    public var servingVersion: Int
    public var createdAt: Date
}

/// A snapshot of a version's user weights. Each user's row records the log sequence its state
/// reflects; `seq` is a sequence every row has reached. Restoring means replaying the log after
/// `seq`, skipping for each user what its row already reflects — so a snapshot written in
/// several transactions, and cut short by a crash, still restores exactly.
public struct UserSnapshot: Sendable {
    public var seq: Int64
    public var users: [String: UserWeights]
    /// Users whose rows reflect the log beyond `seq`, and how far.
    public var ahead: [String: Int64]

    public init(seq: Int64, users: [String: UserWeights], ahead: [String: Int64] = [:]) {
        self.seq = seq
        self.users = users
        self.ahead = ahead
    }

    /// True when the user's stored state already reflects logged observation `seq`.
    public func reflects(uid: String, seq logSeq: Int64) -> Bool {
        logSeq <= seq || logSeq <= ahead[uid, default: seq]
    }
}

/// One user's weights as a snapshot stores them.
public struct SnapshotRow: Sendable {
    public var uid: String
    public var state: [UInt8]
    /// `w_u` alone (`dimension` floats), stored beside the full state so that a start loads
    /// every user's weights without reading the ridge statistics (see ``StoredWeights``).
    public var weights: [Float]
    public var observations: Int
    public var runningLoss: Double?
    public var bootstrapped: Bool
    /// The log sequence this state reflects.
    public var seq: Int64

    /// Serializes the weights. O(d²).
    public init(uid: String, weights: UserWeights, seq: Int64) {
        self.uid = uid
        state = weights.ridge.serialized()
        self.weights = Array(weights.ridge.weights[0..<weights.ridge.dimension])
        observations = weights.observations
        runningLoss = weights.runningLoss
        bootstrapped = weights.bootstrapped
        self.seq = seq
    }
}

/// An item a user of a model observed (logged an observation of), as the snapshot store records
/// it for `exclude_observed`.
public struct ObservedItem: Sendable, Hashable {
    public var uid: String
    public var item: String
    public init(uid: String, item: String) {
        self.uid = uid
        self.item = item
    }
}

extension ModelCatalog {
    /// Saves users' weights, each row with the log sequence it reflects, in one transaction.
    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow]) throws {
        try saveSnapshot(model: model, version: version, rows: rows, observedItems: [])
    }
}

/// One user's weights `w_u` and small fields as the compact snapshot table stores them: what a
/// start loads for every user (the cold tier), without the d×d ridge statistics.
public struct StoredWeights: Sendable {
    public var uid: String
    /// `w_u`, `dimension` floats.
    public var weights: [Float]
    public var observations: Int
    public var runningLoss: Double?
    public var bootstrapped: Bool
    /// The log sequence this state reflects.
    public var seq: Int64

    public init(uid: String, weights: [Float], observations: Int, runningLoss: Double?, bootstrapped: Bool, seq: Int64) {
        self.uid = uid
        self.weights = weights
        self.observations = observations
        self.runningLoss = runningLoss
        self.bootstrapped = bootstrapped
        self.seq = seq
    }
}

/// The catalogue of models and their versions, and the snapshots of their user weights.
public protocol ModelCatalog: Sendable {
    /// All models, by name.
    func models() throws -> [ModelRecord]

    /// The versions of `model`, oldest first.
    func versions(model: String) throws -> [VersionRecord]

    /// Stores a new version with its users' initial weights, which reflect the log up to
    /// `seq`, and, when given, the ratings it was trained on; `serve` makes it the model's
    /// serving version (creating the model if new).
    func createVersion(_ version: ModelVersion, users: [(uid: String, weights: UserWeights)], reflecting seq: Int64,
                       trainingRatings: [Rating], serve: Bool) throws

    /// Makes `version` the model's serving version and retires the one it replaces.
    func setServing(model: String, version: Int) throws
    /// Marks the model's versions still `built` (never served) as `failed`; returns their numbers.
    @discardableResult
    func failUnservedVersions(model: String) throws -> [Int]

    /// Deletes all but the newest `keep` versions of `model` (θ, metadata and user weights),
    /// never the serving version, its parent or a competing challenger. Returns the numbers deleted.
    func pruneVersions(model: String, keep: Int) throws -> [Int]

    /// Loads version `number` of `model`.
    /// - Throws: ``StorageError`` `.notFound` or `.corrupt`.
    func loadVersion(model: String, number: Int) throws -> ModelVersion

    /// The latest snapshot of a version's user weights.
    func loadSnapshot(model: String, version: Int) throws -> UserSnapshot

    /// Saves users' weights, each row with the log sequence it reflects, and items users observed,
    /// in one transaction.
    func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem]) throws

    /// Records that every stored user of the version reflects the log up to `seq` (rows may be
    /// further ahead).
    func advanceSnapshot(model: String, version: Int, to seq: Int64) throws
    /// Records the users whose full state a serving process holds in memory (its hot tier),
    /// replacing the version's previous record. O(users · log users).
    func saveHotUsers(model: String, version: Int, _ uids: [String]) throws
    /// The users last recorded by ``saveHotUsers(model:version:_:)`` (none if never). O(users).
    func hotUsers(model: String, version: Int) throws -> [String]

    /// The number of users with stored weights in a version.
    func userCount(model: String, version: Int) throws -> Int
}
