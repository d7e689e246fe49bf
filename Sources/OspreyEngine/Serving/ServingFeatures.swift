import OspreyMath
import OspreyModel

/// The feature function a serving state scores with (Velox's materialized and computed `f`
/// together): rows below ``trained`` are the version's trained items, read from its table;
/// row `trained + i` is item `i` of the model's ``ItemCatalogue``, its vector computed from its
/// attributes by the version's computed function through the feature cache (Velox §5).
///
/// A computed vector is cached under the item's index tagged with its revision, so a changed
/// item's old vector is never read again (it ages out). With item updates on, the rows items
/// learned online replace these as they are published (``publishing(_:)``): a trained row in a
/// new table, a catalogue row in ``online``. O(d) for a trained row or a cached one; a miss
/// adds the computed function's cost.
public struct ServingFeatures: FeatureFunction {
    /// The version's trained table.
    public let table: MaterializedFeatures
    /// The table's feature cache, when configured.
    let tableCache: FeatureCache<MaterializedFeatures>?
    /// The catalogue's computed vectors, and their cache when configured.
    let computed: ComputedFeatures
    let computedCache: FeatureCache<ComputedFeatures>?
    let catalogue: ItemCatalogue
    /// Catalogue items' rows learned online as last published, by catalogue index: they take
    /// the place of the computed ones.
    let online: [Int: (features: [Float], offset: Float)]
    /// How many publications of online rows these features have had: a view of their rows
    /// (``ServingState/items(_:)``) made at another is made again.
    let publication: Int
    /// Version `v`'s features over `catalogue`, without caches: the same bits as a cached
    /// state's (a cache holds copies). For a cold user's rebuild.
    init(uncached v: ModelVersion, catalogue: ItemCatalogue) {
        self.init(table: v.features, tableCache: nil, computed: ComputedFeatures(v.computedFeatures, source: catalogue),
                  computedCache: nil, catalogue: catalogue)
    }

    init(table: MaterializedFeatures, tableCache: FeatureCache<MaterializedFeatures>?, computed: ComputedFeatures,
         computedCache: FeatureCache<ComputedFeatures>?, catalogue: ItemCatalogue,
         online: [Int: (features: [Float], offset: Float)] = [:], publication: Int = 0) {
        self.table = table
        self.tableCache = tableCache
        self.computed = computed
        self.computedCache = computedCache
        self.catalogue = catalogue
        self.online = online
        self.publication = publication
    }

    /// These features with `rows` (learned online, each of ``stride`` floats) published: trained
    /// rows in a new table (and a new table cache from `tableCache`, since the old one holds old
    /// rows), catalogue rows in ``online``. O(items · d) when a trained row changed, else
    /// O(changed · d).
    func publishing(_ rows: [(row: Int, features: [Float], offset: Float)],
                    tableCache makeCache: (MaterializedFeatures) -> FeatureCache<MaterializedFeatures>?) -> ServingFeatures {
        let n = trained
        let trainedRows = rows.filter { $0.row < n }
        var online = self.online
        for r in rows where r.row >= n { online[r.row - n] = (r.features, r.offset) }
        guard !trainedRows.isEmpty else {
            return ServingFeatures(table: table, tableCache: tableCache, computed: computed, computedCache: computedCache,
                                   catalogue: catalogue, online: online, publication: publication + 1)
        }
        let table = self.table.replacingRows(trainedRows)
        return ServingFeatures(table: table, tableCache: makeCache(table), computed: computed, computedCache: computedCache,
                               catalogue: catalogue, online: online, publication: publication + 1)
    }

    public var dimension: Int { table.dimension }
    public var stride: Int { table.stride }
    /// The number of trained rows.
    public var trained: Int { table.catalog.count }

    public func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        if item < trained {
            if let tableCache { return try tableCache.withFeatures(item: item, body) }
            return try table.withFeatures(item: item, body)
        }
        let index = item - trained
        if !online.isEmpty, let row = online[index] { return try row.features.withUnsafeBufferPointer { try body($0.baseAddress!, row.offset) } }
        if let computedCache {
            return try computedCache.withFeatures(item: index | catalogue.revision(at: index) << 32, body)
        }
        return try computed.withFeatures(item: index, body)
    }

    /// The row of item `id`: its trained row, else its catalogue row, else nil. O(1).
    public func row(of id: String) -> Int? {
        if let row = table.catalog.row(of: id) { return row }
        return catalogue.index(of: id).map { trained + $0 }
    }

    /// The id of row `row`. O(1).
    public func id(of row: Int) -> String {
        row < trained ? table.catalog.ids[row] : catalogue.id(at: row - trained)
    }
}
