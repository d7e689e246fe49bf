import OspreyMath

/// A materialized feature function: a lookup table of item vectors learned offline (the item
/// factors of matrix factorization, with a constant 1 for the user bias), and per-item label
/// offsets `μ + b_i`. The table is one contiguous row-major buffer, so a whole-catalogue scan
/// streams through memory.
public struct MaterializedFeatures: CataloguedFeatures {
    public let dimension: Int
    public let stride: Int
    public let catalog: ItemCatalog
    /// `catalog.count` rows of `stride` floats.
    public let table: [Float]
    /// `μ + b_i` per item row.
    public let offsets: [Float]
    /// The table prepared for whole-catalogue top-k scans: Float32 blocks of 8 items for small
    /// catalogues, an 8-bit copy with error bounds for large ones (see ``ItemScanTable``).
    public let scanTable: ItemScanTable

    /// - Precondition: `table.count == ids.count * paddedStride(dimension)` and one offset per item.
    public init(dimension: Int, ids: [String], table: [Float], offsets: [Float]) {
        let s = VectorKernels.paddedStride(dimension)
        precondition(table.count == ids.count * s, "feature table size does not match the catalogue")
        precondition(offsets.count == ids.count, "one offset per item")
        self.dimension = dimension
        self.stride = s
        self.catalog = ItemCatalog(ids: ids)
        self.table = table
        self.offsets = offsets
        scanTable = ItemScanTable(table: table, offsets: offsets, rows: ids.count, stride: s, dimension: dimension)
    }

    private init(dimension: Int, stride: Int, catalog: ItemCatalog, table: [Float], offsets: [Float]) {
        self.dimension = dimension
        self.stride = stride
        self.catalog = catalog
        self.table = table
        self.offsets = offsets
        scanTable = ItemScanTable(table: table, offsets: offsets, rows: catalog.count, stride: stride, dimension: dimension)
    }

    /// The same items with the given rows replaced (each `features` of ``stride`` floats) and a
    /// scan table made again. O(items · d).
    public func replacingRows(_ rows: [(row: Int, features: [Float], offset: Float)]) -> MaterializedFeatures {
        var table = self.table, offsets = self.offsets
        for r in rows {
            precondition(r.features.count == stride, "a replacement row must have \(stride) floats")
            table.replaceSubrange((r.row * stride)..<((r.row + 1) * stride), with: r.features)
            offsets[r.row] = r.offset
        }
        return MaterializedFeatures(dimension: dimension, stride: stride, catalog: catalog, table: table, offsets: offsets)
    }

    @inlinable
    public func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try table.withUnsafeBufferPointer { try body($0.baseAddress! + item * stride, offsets[item]) }
    }
}
