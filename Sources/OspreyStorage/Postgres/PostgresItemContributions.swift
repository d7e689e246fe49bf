import Foundation
import NIOCore
import OspreyMath
import PostgresNIO

/// The nodes' item contributions in PostgreSQL (``ItemContributionStore``): table
/// `item_contribution`, one row per (model, version, node, item) with the statistics as
/// little-endian `Double`s (`gram`, the packed upper triangle, and `rhs`). Rows belong to their
/// version: pruning the version deletes them.
public final class PostgresItemContributions: ItemContributionStore, Sendable {
    public let database: PostgresDatabase

    /// The table, one migration per change; a shipped one is never edited.
    static let migrations = [
        """
        CREATE TABLE item_contribution (
            model TEXT NOT NULL,
            version INTEGER NOT NULL,
            node TEXT COLLATE "C" NOT NULL,
            item TEXT COLLATE "C" NOT NULL,
            revision BIGINT NOT NULL,
            observations BIGINT NOT NULL,
            gram BYTEA NOT NULL,
            rhs BYTEA NOT NULL,
            PRIMARY KEY (model, version, node, item),
            FOREIGN KEY (model, version) REFERENCES version (model, number) ON DELETE CASCADE
        );
        CREATE INDEX item_contribution_by_revision ON item_contribution (model, version, node, revision)
        """,
    ]

    /// Opens the contributions in `database`, whose version store must exist (`PostgresStores`
    /// creates it), creating the table.
    /// - Throws: ``StorageError`` `.io` when the database cannot be reached or migrated.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "item_contribution", Self.migrations)
    }

    public func publish(model: String, version: Int, node: String, revision: Int64,
                        _ contributions: [(item: String, statistics: RidgeStatistics)]) throws {
        guard !contributions.isEmpty else { return }
        let items = contributions.map(\.item), counts = contributions.map { Int64($0.statistics.count) }
        let grams = contributions.map { Self.bytes($0.statistics.gram) }, rhs = contributions.map { Self.bytes($0.statistics.rhs) }
        try database.transaction { s in
            try s.execute("""
                INSERT INTO item_contribution (model, version, node, item, revision, observations, gram, rhs)
                SELECT \(model), \(version), \(node), i.item, \(revision), i.observations, i.gram, i.rhs
                FROM UNNEST(\(items)::TEXT[], \(counts)::BIGINT[], \(grams)::BYTEA[], \(rhs)::BYTEA[]) AS i (item, observations, gram, rhs)
                ON CONFLICT (model, version, node, item) DO UPDATE SET revision = EXCLUDED.revision,
                    observations = EXCLUDED.observations, gram = EXCLUDED.gram, rhs = EXCLUDED.rhs
                WHERE item_contribution.revision < EXCLUDED.revision
                """)
        }
    }

    public func contributions(model: String, version: Int, dimension: Int, after: [String: Int64]) throws -> [ItemContribution] {
        let nodes = Array(after.keys), revisions = nodes.map { after[$0]! }
        return try database.transaction { s in
            var out: [ItemContribution] = []
            try s.forEach("""
                SELECT c.node, c.item, c.revision, c.observations, c.gram, c.rhs FROM item_contribution c
                LEFT JOIN UNNEST(\(nodes)::TEXT[], \(revisions)::BIGINT[]) AS k (node, revision) ON k.node = c.node
                WHERE c.model = \(model) AND c.version = \(version) AND c.revision > COALESCE(k.revision, 0)
                ORDER BY c.node, c.item
                """) { row in
                let (node, item, revision, observations, gram, rhs) = try row.decode((String, String, Int64, Int64, Data, Data).self)
                do {
                    let statistics = try RidgeStatistics(dimension: dimension, gram: Self.doubles(gram), rhs: Self.doubles(rhs),
                                                         count: Int(observations))
                    out.append(ItemContribution(node: node, item: item, revision: revision, statistics: statistics))
                } catch {
                    throw StorageError(.corrupt, "item_contribution row (\(model), v\(version), node \(node), item \(item)): \(error)")
                }
            }
            return out
        }
    }

    private static func bytes(_ values: [Double]) -> ByteBuffer {
        values.withUnsafeBytes { ByteBuffer(bytes: $0) }
    }

    /// `Double`s from their little-endian bytes; a length that is not a multiple of 8 reads as
    /// a wrong count, which the statistics' check names.
    private static func doubles(_ data: Data) -> [Double] {
        guard data.count % 8 == 0 else { return [] }
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 8)).map { Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) }
        }
    }
}
