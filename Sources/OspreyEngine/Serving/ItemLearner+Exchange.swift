import OspreyMath
import OspreyStorage

/// A cluster node's side of the items (docs/architecture.md, "Items on several nodes"): what it
/// learned of each item, published as sums, and the other nodes' sums folded in.
extension ItemLearner {
    /// A cluster node's next publication (``ItemExchange``): its revision, one more than the
    /// last, and its own sums of the items they changed since the last. ``markUnexchanged(_:)``
    /// puts them back when publishing failed. O(changed · d²).
    func takeUnexchanged() -> (revision: Int64, items: [(item: String, statistics: RidgeStatistics)]) {
        live.withLock { l in
            guard l.shared != nil, !l.shared!.unexchanged.isEmpty else { return (l.shared?.revision ?? 0, []) }
            l.shared!.revision += 1
            let node = l.shared!.node, ledger = l.shared!.ledger
            let items = l.shared!.unexchanged.sorted().map { ($0, ledger.statistics(node: node, item: $0)!) }
            l.shared!.unexchanged.removeAll(keepingCapacity: true)
            return (l.shared!.revision, items)
        }
    }

    /// Marks items unexchanged again (after publishing them failed).
    func markUnexchanged(_ items: some Sequence<String>) {
        live.withLock { $0.shared?.unexchanged.formUnion(items) }
    }

    /// The highest revision of each node this learner has merged, and this node's last: what
    /// the next read of the store starts after.
    var mergedRevisions: [String: Int64] {
        live.withLock { l in
            guard let shared = l.shared else { return [:] }
            return shared.ledger.revisions.merging([shared.node: shared.revision]) { max($0, $1) }
        }
    }

    /// Merges publications into the ledger, then solves every item they changed, and every item
    /// learned here since the last fold, again from its start and every node's sums; the new
    /// rows are published to answers with the next ``takeUnpublished(stride:)``. Rows of this
    /// node's own publications are merged only with `own` (a start, taking back what this node
    /// published before it stopped; its revisions continue from there). An item unknown to
    /// `features` joins its catalogue. The solves run outside the lock; an item learned
    /// meanwhile is solved at the next fold. Returns the items solved. O(changed · d³).
    @discardableResult
    func fold(_ contributions: [ItemContribution], features: ServingFeatures, own: Bool = false) -> Int {
        struct Solve { var row: Int; var start: Item; var sums: RidgeStatistics?; var learnings: UInt64 }
        let solves: [Solve] = live.withLock { l in
            guard l.shared != nil else { return [] }
            var rows = l.shared!.learnedSinceFold
            l.shared!.learnedSinceFold.removeAll(keepingCapacity: true)
            for c in contributions where own || c.node != l.shared!.node {
                guard l.shared!.ledger.merge(c) else { continue }
                if c.node == l.shared!.node { l.shared!.revision = max(l.shared!.revision, c.revision) }
                if features.row(of: c.item) == nil { features.catalogue.addObserved(c.item) }
                guard let row = features.row(of: c.item) else { continue }
                rows.insert(row)
            }
            return rows.map { row in
                if l.items[row] == nil { l.items[row] = startingItem(row, features: features) }
                let start = l.shared!.start[row] ?? l.items[row]!
                l.shared!.start[row] = start
                return Solve(row: row, start: start, sums: l.shared!.ledger.total(item: features.id(of: row)),
                             learnings: l.shared!.learnings[row, default: 0])
            }
        }
        let solved = solves.map { s -> (Solve, RidgeState?) in
            guard let sums = s.sums else { return (s, s.start.ridge) }
            return (s, try? RidgeState(s.start.ridge, adding: sums))
        }
        return live.withLock { l in
            var installed = 0
            for (s, state) in solved {
                guard let state, l.shared!.learnings[s.row, default: 0] == s.learnings else {
                    // Learned meanwhile (or, with rounding, not positive definite): kept as learned.
                    l.shared!.learnedSinceFold.insert(s.row)
                    continue
                }
                l.items[s.row] = Item(ridge: state, observations: s.start.observations + (s.sums?.count ?? 0), seq: s.start.seq)
                l.unpublished.insert(s.row)
                installed += 1
            }
            return installed
        }
    }
}
