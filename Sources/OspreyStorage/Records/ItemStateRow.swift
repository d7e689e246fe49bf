import OspreyMath

/// One item's online ridge state as a snapshot stores it: the item-side twin of
/// ``SnapshotRow``, learned online beside the users' (docs/architecture.md, "Storage semantics").
public struct ItemStateRow: Sendable {
    public var item: String
    /// `RidgeState.serialized()`, of the version's dimension (as users' states are).
    public var state: [UInt8]
    /// The observations learned online into this state.
    public var observations: Int
    /// The log sequence this state reflects.
    public var seq: Int64

    /// Serializes the state. O(d²).
    public init(item: String, ridge: RidgeState, observations: Int, seq: Int64) {
        self.item = item
        state = ridge.serialized()
        self.observations = observations
        self.seq = seq
    }
}

/// One item's stored online state, read back (see ``SnapshotStore/loadItemStates(model:version:dimension:)``).
public struct StoredItemState: Sendable {
    public var item: String
    public var ridge: RidgeState
    public var observations: Int
    /// The log sequence this state reflects.
    public var seq: Int64

    public init(item: String, ridge: RidgeState, observations: Int, seq: Int64) {
        self.item = item
        self.ridge = ridge
        self.observations = observations
        self.seq = seq
    }
}
