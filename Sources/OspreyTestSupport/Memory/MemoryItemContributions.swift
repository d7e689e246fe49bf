import OspreyMath
import OspreyStorage
import Synchronization

/// Item contributions in memory (``ItemContributionStore``), for engine tests of several nodes in
/// one process.
public final class MemoryItemContributions: ItemContributionStore, Sendable {
    private struct Key: Hashable {
        var model: String, version: Int, node: String, item: String
    }

    private let rows = Mutex<[Key: ItemContribution]>([:])

    public init() {}

    public func publish(model: String, version: Int, node: String, revision: Int64,
                        _ contributions: [(item: String, statistics: RidgeStatistics)]) throws {
        rows.withLock { rows in
            for c in contributions {
                let key = Key(model: model, version: version, node: node, item: c.item)
                if let old = rows[key], old.revision >= revision { continue }
                rows[key] = ItemContribution(node: node, item: c.item, revision: revision, statistics: c.statistics)
            }
        }
    }

    public func contributions(model: String, version: Int, dimension: Int, after: [String: Int64]) throws -> [ItemContribution] {
        rows.withLock { rows in
            rows.filter { $0.key.model == model && $0.key.version == version && $0.value.revision > after[$0.key.node, default: 0] }
                .map(\.value).sorted { ($0.node, $0.item) < ($1.node, $1.item) }
        }
    }
}
