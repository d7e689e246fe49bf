import OspreyModel

/// The append-only, durable record of all observations (DESIGN.md §2, §6): the source of truth
/// that user weights are a view of and that retraining reads.
public protocol ObservationLog: Sendable {
    /// Appends observations in one durable commit and returns their sequence numbers, in order.
    /// When it returns, the observations survive a crash or power loss.
    func append(_ observations: [Observation]) throws -> [Int64]

    /// Calls `body` for each of `model`'s observations with a sequence number above `seq`, in
    /// sequence order.
    func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws

    /// The number of `model`'s observations in the log.
    func observationCount(model: String) throws -> Int

    /// The highest sequence number in the log (0 when empty).
    func lastSequence() throws -> Int64
}
