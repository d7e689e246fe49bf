import Foundation
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

    public init(model: String, number: Int, createdAt: Date, status: Status, parent: Int?, dimension: Int, items: Int,
                metadata: TrainingMetadata) {
        self.model = model
        self.number = number
        self.createdAt = createdAt
        self.status = status
        self.parent = parent
        self.dimension = dimension
        self.items = items
        self.metadata = metadata
    }
}

/// A model as the catalogue lists it.
public struct ModelRecord: Sendable, Equatable {
    public var name: String
    public var servingVersion: Int
    public var createdAt: Date

    public init(name: String, servingVersion: Int, createdAt: Date) {
        self.name = name
        self.servingVersion = servingVersion
        self.createdAt = createdAt
    }
}
