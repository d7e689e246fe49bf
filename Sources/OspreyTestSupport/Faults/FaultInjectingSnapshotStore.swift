import OspreyModel
import OspreyStorage

/// A ``SnapshotStore`` whose calls fail when ``Faults`` says so.
public struct FaultInjectingSnapshotStore: SnapshotStore {
    let base: any SnapshotStore
    let faults: Faults

    public init(_ base: any SnapshotStore, _ faults: Faults) {
        self.base = base
        self.faults = faults
    }

    public func replaceUsers(model: String, version: Int, reflecting seq: Int64,
                             _ rows: (_ write: ([SnapshotRow]) throws -> Void) throws -> Void) throws {
        try faults.run(.snapshotWrite) { try base.replaceUsers(model: model, version: version, reflecting: seq, rows) }
    }
    public func deleteUser(model: String, uid: String) throws -> Int {
        try faults.run(.snapshotWrite) { try base.deleteUser(model: model, uid: uid) }
    }
    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem], keepingPrevious: Bool) throws {
        try faults.run(.snapshotWrite) {
            try base.saveSnapshot(model: model, version: version, rows: rows, observedItems: observedItems, keepingPrevious: keepingPrevious)
        }
    }
    public func saveItemStates(model: String, version: Int, rows: [ItemStateRow], keepingPrevious: Bool) throws {
        try faults.run(.snapshotWrite) { try base.saveItemStates(model: model, version: version, rows: rows, keepingPrevious: keepingPrevious) }
    }
    public func forEachItemState(model: String, version: Int, dimension: Int, _ body: (StoredItemState) throws -> Void) throws {
        try faults.run(.snapshotRead) { try base.forEachItemState(model: model, version: version, dimension: dimension, body) }
    }
    public func loadItemState(model: String, version: Int, item: String, dimension: Int) throws -> StoredItemState? {
        try faults.run(.snapshotRead) { try base.loadItemState(model: model, version: version, item: item, dimension: dimension) }
    }
    public func restoreInterruptedSnapshot(model: String, version: Int) throws -> Int {
        try faults.run(.snapshotWrite) { try base.restoreInterruptedSnapshot(model: model, version: version) }
    }
    public func saveObservedItems(model: String, _ items: [ObservedItem]) throws {
        try faults.run(.snapshotWrite) { try base.saveObservedItems(model: model, items) }
    }
    public func observedItems(model: String, uid: String) throws -> [String] {
        try faults.run(.snapshotRead) { try base.observedItems(model: model, uid: uid) }
    }
    public func advanceSnapshot(model: String, version: Int, to seq: Int64) throws {
        try faults.run(.snapshotWrite) { try base.advanceSnapshot(model: model, version: version, to: seq) }
    }
    public func loadSnapshot(model: String, version: Int, dimension: Int) throws -> UserSnapshot {
        try faults.run(.snapshotRead) { try base.loadSnapshot(model: model, version: version, dimension: dimension) }
    }
    public func snapshotSequence(model: String, version: Int) throws -> Int64 {
        try faults.run(.snapshotRead) { try base.snapshotSequence(model: model, version: version) }
    }
    public func forEachStoredWeights(model: String, version: Int, dimension: Int, _ body: (StoredWeights) throws -> Void) throws {
        try faults.run(.snapshotRead) { try base.forEachStoredWeights(model: model, version: version, dimension: dimension, body) }
    }
    public func loadUserState(model: String, version: Int, uid: String, dimension: Int) throws -> (weights: UserWeights, seq: Int64)? {
        try faults.run(.snapshotRead) { try base.loadUserState(model: model, version: version, uid: uid, dimension: dimension) }
    }
    public func userCount(model: String, version: Int) throws -> Int { try faults.run(.snapshotRead) { try base.userCount(model: model, version: version) } }
    public func saveHotUsers(model: String, version: Int, _ uids: [String]) throws {
        try faults.run(.snapshotWrite) { try base.saveHotUsers(model: model, version: version, uids) }
    }
    public func hotUsers(model: String, version: Int) throws -> [String] { try faults.run(.snapshotRead) { try base.hotUsers(model: model, version: version) } }
    public func deleteVersion(model: String, version: Int, limit: Int) throws -> Int {
        try faults.run(.snapshotWrite) { try base.deleteVersion(model: model, version: version, limit: limit) }
    }
    public func storedVersions(model: String) throws -> [Int] { try base.storedVersions(model: model) }
}
