import OspreyMath

/// The feature function `f(x; θ)` of a personalized linear model (Velox §3): it maps an item to a
/// vector of ``dimension`` floats, and each item carries a label offset that the user weights do
/// not explain (the global mean plus the item bias).
///
/// Vectors are laid out with ``stride`` floats (a multiple of 8, zero-padded) so the predictor's
/// SIMD kernels read them whole. Items are addressed by row: a ``MaterializedFeatures`` table's
/// rows are its trained items (its ``ItemCatalog``); a ``ComputedFeatures`` function's rows are
/// those of the attribute source it reads.
public protocol FeatureFunction: Sendable {
    /// The length of a feature vector (and of every user's weights).
    var dimension: Int { get }
    /// The padded length of a stored feature vector.
    var stride: Int { get }
    /// Calls `body` with the padded feature vector of item row `item` and its label offset.
    func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R
}

/// A feature function over a fixed set of items named by an ``ItemCatalog``: the rows of a
/// trained table.
public protocol CataloguedFeatures: FeatureFunction {
    /// The items this function knows, by row.
    var catalog: ItemCatalog { get }
}

extension FeatureFunction {
    /// `offset_i + w · f_i` for item row `item`, with `w` padded to the stride. O(d) plus
    /// producing the features.
    @inlinable
    public func score(weights: UnsafePointer<Float>, item: Int) -> Float {
        withFeatures(item: item) { f, offset in offset + VectorKernels.dot(weights, f, count: stride) }
    }
}

/// The items a model version knows: their ids and dense row numbers.
public struct ItemCatalog: Sendable {
    /// Item ids by row.
    public let ids: [String]
    private let rows: [String: Int]

    public init(ids: [String]) {
        self.ids = ids
        var rows = [String: Int](minimumCapacity: ids.count)
        for (row, id) in ids.enumerated() { rows[id] = row }
        self.rows = rows
    }

    /// The row of item `id`, or nil when the version does not know it. O(1).
    public func row(of id: String) -> Int? { rows[id] }

    /// The number of items.
    public var count: Int { ids.count }
}
