import Foundation
import OspreyMath
import OspreyModel

/// A version as the catalogue lists it.
public struct VersionRecord: Sendable, Equatable {
    public enum Status: String, Sendable { case serving, retired, failed }
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

/// A consistent snapshot of a version's user weights: every user's state as of log sequence `seq`.
public struct UserSnapshot: Sendable {
    public var seq: Int64
    public var users: [String: UserWeights]

    public init(seq: Int64, users: [String: UserWeights]) {
        self.seq = seq
        self.users = users
    }
}

/// The catalogue of models and their versions, and the snapshots of their user weights.
public protocol ModelCatalog: Sendable {
    /// All models, by name.
    func models() throws -> [ModelRecord]

    /// The versions of `model`, oldest first.
    func versions(model: String) throws -> [VersionRecord]

    /// Stores a new version with its users' initial weights and, when given, the ratings it was
    /// trained on; `serve` makes it the model's serving version (creating the model if new).
    func createVersion(_ version: ModelVersion, users: [(uid: String, state: RidgeState)],
                       trainingRatings: [Rating], serve: Bool) throws

    /// Loads version `number` of `model`.
    /// - Throws: ``StorageError`` `.notFound` or `.corrupt`.
    func loadVersion(model: String, number: Int) throws -> ModelVersion

    /// The latest snapshot of a version's user weights.
    func loadSnapshot(model: String, version: Int) throws -> UserSnapshot

    /// Saves the changed users' weights as of log sequence `seq`, in one transaction.
    func saveSnapshot(model: String, version: Int, seq: Int64, changed: [(uid: String, weights: UserWeights)]) throws

    /// The number of users with stored weights in a version.
    func userCount(model: String, version: Int) throws -> Int
}
