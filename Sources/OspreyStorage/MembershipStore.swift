/// A serving node as the cluster's membership records it: its name (what the partition ring
/// ranks) and the address clients reach it at (what a `421` names).
public struct ClusterMember: Sendable, Hashable, CustomStringConvertible {
    public let name: String
    /// `HOST:PORT`.
    public let address: String

    public init(name: String, address: String) {
        self.name = name
        self.address = address
    }

    public var description: String { "\(name) (\(address))" }
}

/// Who is in the cluster (docs/operations.md, "Partitioned serving"): the nodes sharing one store,
/// each alive as long as it keeps sending heartbeats. Liveness is judged by the store's clock, so
/// nodes whose clocks disagree still agree on who is live.
public protocol MembershipStore: Sendable {
    /// Records that `member` is alive now (joining if it was not a member, taking its row back
    /// if it was, with its address as given), then returns every member whose last heartbeat
    /// is younger than `timeout`, this one included, ordered by name: one transaction, so the
    /// list is as of the heartbeat.
    /// - Throws: ``StorageError`` `.io` when the store cannot be reached; then nothing changed.
    func heartbeat(_ member: ClusterMember, timeout: Duration) throws -> [ClusterMember]

    /// Removes member `name` (a graceful stop): the others stop counting it at their next
    /// heartbeat, not after the timeout. Idempotent.
    func leave(_ name: String) throws

    /// Tells every member listening (``onAnnouncement(_:)``) that what the version store
    /// records of model `model` for every node changed: its serving version, its exploration
    /// policy. Delivery is quick but not guaranteed (a member reconnecting may miss one): members
    /// also compare them at each heartbeat.
    func announceChange(model: String) throws

    /// Calls `handler` with the model each announcement names, from now on, for as long as the
    /// store is open (on a thread of the store's; `handler` must return quickly).
    func onAnnouncement(_ handler: @escaping @Sendable (_ model: String) -> Void) throws

    /// Claims the retrain of `model` for node `node`, so one node of the cluster retrains it at a
    /// time: granted when no node holds it, when `node` holds it already, or when its holder is
    /// not a live member (its last heartbeat older than `timeout`, or gone). Returns nil when
    /// granted, else the holder's name. One transaction: of two nodes claiming at once, one wins.
    /// - Throws: ``StorageError`` `.io` when the store cannot be reached; then nothing changed.
    func claimRetrain(model: String, node: String, timeout: Duration) throws -> String?

    /// Gives up `node`'s claim on the retrain of `model` (nothing when it holds none). A node's
    /// claims also go when it ``leave(_:)``s.
    func releaseRetrain(model: String, node: String) throws
}
