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

    public func models() throws -> [ModelRecord] { try faults.run(.versionRead) { try base.models() } }
    public func versions(model: String) throws -> [VersionRecord] { try faults.run(.versionRead) { try base.versions(model: model) } }
    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        try faults.run(.versionRead) { try base.loadVersion(model: model, number: number) }
    }
    public func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        try faults.run(.versionWrite) { try base.insertVersion(version, trainingRatings: trainingRatings, serve: serve) }
    }
    public func setServing(model: String, version: Int) throws { try faults.run(.versionWrite) { try base.setServing(model: model, version: version) } }
    @discardableResult
    public func failUnservedVersions(model: String) throws -> [Int] { try faults.run(.versionWrite) { try base.failUnservedVersions(model: model) } }
    public func deleteVersions(model: String, _ numbers: [Int]) throws { try faults.run(.versionWrite) { try base.deleteVersions(model: model, numbers) } }
    public func initialRatings(model: String) throws -> [Rating] { try faults.run(.versionRead) { try base.initialRatings(model: model) } }
    public func trainingItems(model: String, uid: String) throws -> [String] {
        try faults.run(.versionRead) { try base.trainingItems(model: model, uid: uid) }
    }
    public func deleteTrainingRatings(model: String, uid: String) throws -> Int {
        try faults.run(.versionWrite) { try base.deleteTrainingRatings(model: model, uid: uid) }
    }
    public func competitions() throws -> [String: CompetitionRecord] { try faults.run(.versionRead) { try base.competitions() } }
    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try faults.run(.versionWrite) { try base.setCompetition(model: model, record) }
    }
    public func promoteChallenger(model: String, version: Int) throws {
        try faults.run(.versionWrite) { try base.promoteChallenger(model: model, version: version) }
    }
    public func explorationPolicies() throws -> [String: String] { try faults.run(.versionRead) { try base.explorationPolicies() } }
    public func setExplorationPolicy(model: String, policy: String) throws {
        try faults.run(.versionWrite) { try base.setExplorationPolicy(model: model, policy: policy) }
    }
    public func putItems(model: String, _ items: [CatalogueItem]) throws { try faults.run(.versionWrite) { try base.putItems(model: model, items) } }
    public func setItemHidden(model: String, item: String, hidden: Bool) throws -> Bool {
        try faults.run(.versionWrite) { try base.setItemHidden(model: model, item: item, hidden: hidden) }
    }
    public func catalogueItems(model: String) throws -> [CatalogueItem] { try faults.run(.versionRead) { try base.catalogueItems(model: model) } }
    public func catalogueChanges(model: String, after revision: Int64) throws -> (items: [CatalogueItem], revision: Int64) {
        try faults.run(.versionRead) { try base.catalogueChanges(model: model, after: revision) }
    }
    public func catalogueItem(model: String, id: String) throws -> CatalogueItem? {
        try faults.run(.versionRead) { try base.catalogueItem(model: model, id: id) }
    }
}
