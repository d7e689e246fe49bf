import OspreyStorage

/// A ``DecisionStore`` whose calls fail when ``Faults`` says so.
public struct FaultInjectingDecisionStore: DecisionStore {
    let base: any DecisionStore
    let faults: Faults

    public init(_ base: any DecisionStore, _ faults: Faults) {
        self.base = base
        self.faults = faults
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        try faults.run(.decisionWrite) { try base.deleteUser(model: model, uid: uid) }
    }

    public func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double?, trimKeep: Int?) throws -> Int {
        try faults.run(.decisionWrite) { try base.appendDecisions(decisions, trimBefore: trimBefore, trimKeep: trimKeep) }
    }
    public func pruneDecisions(before: Double?, keep: Int?, batch: Int, maxBatches: Int) throws -> Int {
        try faults.run(.decisionWrite) { try base.pruneDecisions(before: before, keep: keep, batch: batch, maxBatches: maxBatches) }
    }
    public func decision(eventId: String) throws -> DecisionRecord? { try faults.run(.decisionRead) { try base.decision(eventId: eventId) } }
    public func decisions(model: String, limit: Int) throws -> [DecisionRecord] {
        try faults.run(.decisionRead) { try base.decisions(model: model, limit: limit) }
    }
    public func decisionCount(model: String) throws -> Int { try faults.run(.decisionRead) { try base.decisionCount(model: model) } }
    public func decisionVersions(model: String, since: Double) throws -> [String: Int] {
        try faults.run(.decisionRead) { try base.decisionVersions(model: model, since: since) }
    }
    public func appendAssignments(_ assignments: [Assignment]) throws { try faults.run(.decisionWrite) { try base.appendAssignments(assignments) } }
    public func assignments(model: String, since: Double) throws -> [String: Int] {
        try faults.run(.decisionRead) { try base.assignments(model: model, since: since) }
    }
}
