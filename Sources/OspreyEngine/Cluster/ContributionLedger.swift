import OspreyMath
import OspreyStorage

/// What every node of a cluster has learned of the items of one version, as this node knows it
/// (docs/architecture.md, "Items on several nodes"): for each node and item, the node's
/// cumulative ``ItemContribution`` at the highest revision seen.
///
/// A state-based grow-only CRDT: merging keeps, per node and item, the higher revision, which is
/// commutative, associative and idempotent, so ledgers that have merged the same publications
/// hold the same entries whatever the order, repetitions or delays of their deliveries. An
/// item's ``total(item:dimension:)`` sums the nodes' entries in the order of their names, so
/// equal ledgers give equal totals to the bit.
struct ContributionLedger: Sendable {
    private var entries: [String: [String: (revision: Int64, statistics: RidgeStatistics)]] = [:]
    /// The highest revision merged of each node.
    private(set) var revisions: [String: Int64] = [:]

    /// Merges one publication's row. Returns whether it changed the ledger (a revision higher
    /// than the one held for its node and item). O(d²) when it does.
    @discardableResult
    mutating func merge(_ c: ItemContribution) -> Bool {
        revisions[c.node] = max(revisions[c.node, default: 0], c.revision)
        if let held = entries[c.node]?[c.item], held.revision >= c.revision { return false }
        entries[c.node, default: [:]][c.item] = (c.revision, c.statistics)
        return true
    }

    /// Adds this node's observation to its own entry for `item` (``ItemRidge`` computes it);
    /// the entry's revision is the node's next publication's. O(d²).
    mutating func withOwnStatistics<R>(node: String, item: String, dimension: Int, _ body: (inout RidgeStatistics) -> R) -> R {
        var held = entries[node]?[item] ?? (0, RidgeStatistics(dimension: dimension))
        entries[node]?[item] = nil  // uniquely referenced while `body` writes it
        defer { entries[node, default: [:]][item] = held }
        return body(&held.statistics)
    }

    /// Node `node`'s entry for `item`.
    func statistics(node: String, item: String) -> RidgeStatistics? {
        entries[node]?[item]?.statistics
    }

    /// Every node's statistics of `item`, summed in the order of the nodes' names; nil when no
    /// node has any. O(nodes · d²).
    func total(item: String) -> RidgeStatistics? {
        var sum: RidgeStatistics?
        for node in entries.keys.sorted() {
            guard let s = entries[node]?[item]?.statistics else { continue }
            if sum == nil { sum = s } else { sum! += s }
        }
        return sum
    }
}
