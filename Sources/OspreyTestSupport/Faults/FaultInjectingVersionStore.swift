import OspreyModel
import OspreyStorage

/// A ``VersionStore`` whose calls fail when ``Faults`` says so.
public struct FaultInjectingVersionStore: VersionStore {
    let base: any VersionStore
    let faults: Faults

    public init(_ base: any VersionStore, _ faults: Faults) {
        self.base = base
        self.faults = faults
    }

    private func read<T>(_ body: () throws -> T) throws -> T {
        try faults.check(.versionRead)
        return try body()
    }

    private func write<T>(_ body: () throws -> T) throws -> T {
        try faults.check(.versionWrite)
        return try body()
    }

    public func models() throws -> [ModelRecord] { try read { try base.models() } }
    public func versions(model: String) throws -> [VersionRecord] { try read { try base.versions(model: model) } }
    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        try read { try base.loadVersion(model: model, number: number) }
    }
    public func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        try write { try base.insertVersion(version, trainingRatings: trainingRatings, serve: serve) }
    }
    public func setServing(model: String, version: Int) throws { try write { try base.setServing(model: model, version: version) } }
    @discardableResult
    public func failUnservedVersions(model: String) throws -> [Int] { try write { try base.failUnservedVersions(model: model) } }
    public func deleteVersions(model: String, _ numbers: [Int]) throws { try write { try base.deleteVersions(model: model, numbers) } }
    public func initialRatings(model: String) throws -> [Rating] { try read { try base.initialRatings(model: model) } }
    public func trainingItems(model: String, uid: String) throws -> [String] {
        try read { try base.trainingItems(model: model, uid: uid) }
    }
    public func competitions() throws -> [String: CompetitionRecord] { try read { try base.competitions() } }
    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try write { try base.setCompetition(model: model, record) }
    }
    public func promoteChallenger(model: String, version: Int) throws {
        try write { try base.promoteChallenger(model: model, version: version) }
    }
    public func explorationPolicies() throws -> [String: String] { try read { try base.explorationPolicies() } }
    public func setExplorationPolicy(model: String, policy: String) throws {
        try write { try base.setExplorationPolicy(model: model, policy: policy) }
    }
}
