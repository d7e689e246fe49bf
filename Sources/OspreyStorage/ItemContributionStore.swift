import OspreyMath

/// One node's contribution to one item's online statistics under one version: everything the
/// node has learned of the item since the version started (cumulative), at the node's
/// `revision`, which grows with each of the node's publications.
public struct ItemContribution: Sendable, Equatable {
    public var node: String
    public var item: String
    public var revision: Int64
    /// What the node's observations of the item added (``RidgeStatistics``), in the item side's
    /// parameters.
    public var statistics: RidgeStatistics

    public init(node: String, item: String, revision: Int64, statistics: RidgeStatistics) {
        self.node = node
        self.item = item
        self.revision = revision
        self.statistics = statistics
    }
}

/// Where the nodes of a cluster publish what they learned of items (docs/architecture.md, "Items
/// on several nodes"): one row per (model, version, node, item), written only by its node.
/// A row is replaced only by one of a higher revision, so publications that arrive twice, late
/// or out of order change nothing: with the sum over nodes, a state-based grow-only CRDT. A
/// version's contributions go with the version when it is pruned.
public protocol ItemContributionStore: Sendable {
    /// Records `contributions` of node `node` to version `version` of `model` as revision
    /// `revision`, all in one transaction; a row already at `revision` or higher stays.
    /// - Throws: ``StorageError`` `.io` when the store cannot be written; then nothing changed.
    func publish(model: String, version: Int, node: String, revision: Int64, _ contributions: [(item: String, statistics: RidgeStatistics)]) throws

    /// The version's contributions of every node whose revision is above `after[node]` (above
    /// 0 for a node not named), each as last published, as of one moment.
    /// - Throws: ``StorageError`` `.io` when the store cannot be read, `.corrupt` for a row whose
    ///   statistics do not have `dimension` parameters.
    func contributions(model: String, version: Int, dimension: Int, after: [String: Int64]) throws -> [ItemContribution]
}
