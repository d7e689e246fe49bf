import OspreyModel
import OspreyStorage

/// An ``ObservationLog`` whose calls fail when ``Faults`` says so.
public struct FaultInjectingObservationLog: ObservationLog {
    let base: any ObservationLog
    let faults: Faults

    public init(_ base: any ObservationLog, _ faults: Faults) {
        self.base = base
        self.faults = faults
    }

    public func append(_ observations: [Observation]) throws -> [Int64?] {
        try faults.run(.commit) { try base.append(observations) }
    }

    public func append(_ observations: [Observation], fence: AppendFence) throws -> [Int64?] {
        try faults.run(.commit) { try base.append(observations, fence: fence) }
    }

    public func claimBuckets(_ buckets: [Int], node: String) throws {
        try base.claimBuckets(buckets, node: node)
    }

    public func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation] {
        try faults.run(.logRead) { try base.observations(model: model, after: seq, limit: limit) }
    }

    public func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws {
        try faults.run(.logRead) { try base.forEachObservation(model: model, after: seq, body) }
    }

    public func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                                   _ body: (LoggedObservation) throws -> Void) throws {
        try faults.run(.logRead) { try base.forEachObservation(model: model, uid: uid, in: range, body) }
    }

    public func feedback(model: String) throws -> [String: DecisionFeedback] {
        try faults.run(.logRead) { try base.feedback(model: model) }
    }

    public func observationCount(model: String) throws -> Int {
        try faults.run(.logRead) { try base.observationCount(model: model) }
    }

    public func lastSequence() throws -> Int64 {
        try faults.run(.logRead) { try base.lastSequence() }
    }

    public func deleteUser(model: String, uid: String, through seq: Int64) throws -> Int {
        try faults.run(.commit) { try base.deleteUser(model: model, uid: uid, through: seq) }
    }
}
