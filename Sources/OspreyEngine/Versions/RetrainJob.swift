import Foundation

/// A retrain of one model, as `GET /v1/models/{model}/jobs/{id}` reports it.
public struct RetrainJob: Sendable, Equatable {
    public enum Phase: String, Sendable {
        case loading, training, installing, done, failed, cancelled
    }

    /// What started a retrain (recorded in its version's metadata too).
    public enum Trigger: String, Sendable {
        /// Asked for, through the API or `osprey retrain`.
        case request
        /// The serving version went stale, with automatic retraining on.
        case staleness
        /// Factors trained elsewhere came in (`osprey import`): no ALS runs.
        case `import`
    }

    public let id: Int
    public let model: String
    public let trigger: Trigger
    public var phase: Phase
    /// Candidate λ fitted so far while λ is chosen by validation, before the final fit.
    public var lambdaFits = 0
    /// ALS iteration of the final fit (0 while λ is being chosen).
    public var iteration: Int
    public var iterations: Int
    public let startedAt: Date
    public var finishedAt: Date?
    /// The version the retrain created, once it serves.
    public var version: Int?
    /// Why it failed.
    public var error: String?
    /// Cancellation was asked for; the job stops at its next check (before it installs).
    public var cancelRequested = false

    /// Seconds since it started (until it finished).
    public var elapsed: Double { (finishedAt ?? Date()).timeIntervalSince(startedAt) }

    /// True once it is done, failed or cancelled.
    public var finished: Bool { phase == .done || phase == .failed || phase == .cancelled }
}
