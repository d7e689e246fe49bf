import OspreyStorage

extension Stores {
    /// Four fresh in-memory stores: for engine and server tests that are not about storage.
    public static func inMemory() -> Stores {
        Stores(log: MemoryObservationLog(), versions: MemoryVersionStore(), snapshots: MemorySnapshotStore(),
               decisions: MemoryDecisionStore())
    }
}
