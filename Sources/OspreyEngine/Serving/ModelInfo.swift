import Foundation
import OspreyModel
import OspreyStorage

/// What `GET /v1/models/{model}` and `osprey models` report about a model.
public struct ModelInfo: Sendable {
    public var name: String
    public var version: Int
    /// Latent factors d of the serving version.
    public var dimension: Int
    public var users: Int
    public var items: Int
    public var observations: Int
    public var versions: [VersionRecord]
    /// The serving version's staleness monitor.
    public var quality: QualityMonitor
    /// How top-k answers explore.
    public var exploration: ExplorationPolicy
    /// Top-k decisions logged (all time).
    public var decisions: Int
    /// The running competition, if any.
    public var competition: CompetitionInfo?
}

/// A running competition as the model info reports it.
public struct CompetitionInfo: Sendable {
    public var champion: Int
    public var challenger: Int
    public var allocation: TrafficAllocation
    /// Seconds since the epoch.
    public var since: Double
    /// The share of new users the challenger gets now.
    public var challengerShare: Double
    /// Champion, challenger, then any earlier champion.
    public var arms: [Competition.Arm]
}

/// What `GET /v1/models/{model}/users/{uid}` reports about a user.
public struct UserInfo: Sendable, Equatable {
    public var uid: String
    /// The user's observations in the log (not counting initial training data).
    public var observations: Int
    /// Running mean of the squared prequential error; nil before any observation.
    public var runningLoss: Double?
    /// True for a user not in the serving version's training data (started from the mean weights).
    public var bootstrapped: Bool
}
