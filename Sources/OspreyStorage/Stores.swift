/// The four stores an Osprey process works with, one per concern. The engine depends on these
/// protocols only; `SQLiteStores` opens the embedded implementation of all four in a data
/// directory, and the test-support target has in-memory and fault-injecting ones.
public struct Stores: Sendable {
    /// The observation log: the source of truth.
    public var log: any ObservationLog
    /// Models, versions, training ratings, exploration policies and competitions.
    public var versions: any VersionStore
    /// User-weight snapshots, observed items and hot users.
    public var snapshots: any SnapshotStore
    /// The decision log and competition assignments.
    public var decisions: any DecisionStore

    public init(log: any ObservationLog, versions: any VersionStore, snapshots: any SnapshotStore, decisions: any DecisionStore) {
        self.log = log
        self.versions = versions
        self.snapshots = snapshots
        self.decisions = decisions
    }
}
