import OspreyMath
import OspreyModel

/// Answers `predict` and `topK` (Velox §5): `w_u · f(x; θ)` plus the item's offset, computed live
/// from the serving version and the user's current weights. A user never seen is scored with the
/// version's prior (the mean of all users' weights).
public struct Predictor: Sendable {
    /// Items scored per block of a whole-catalogue scan (kept in a stack buffer).
    static let blockSize = 256

    let registry: ModelRegistry

    public init(registry: ModelRegistry) {
        self.registry = registry
    }

    /// A single prediction and the version that made it.
    public struct Prediction: Sendable, Equatable {
        public var score: Float
        public var version: Int
    }

    /// A top-k answer: items best first, and the version that ranked them.
    public struct Ranking: Sendable, Equatable {
        public var items: [(item: String, score: Float)]
        public var version: Int

        public static func == (a: Ranking, b: Ranking) -> Bool {
            a.version == b.version && a.items.count == b.items.count
                && zip(a.items, b.items).allSatisfy { $0.item == $1.item && $0.score == $1.score }
        }
    }

    /// The score of `item` for user `uid`. O(d).
    /// - Throws: ``OspreyError`` `unknownModel` or `unknownItem`.
    public func predict(model: String, uid: String, item: String) throws -> Prediction {
        let state = try registry.model(model).current
        let v = state.version
        guard let row = v.features.catalog.row(of: item) else {
            throw OspreyError.unknownItem(item, model: model, version: v.number)
        }
        return withWeights(state, uid) { w in
            Prediction(score: v.features.score(weights: w, item: row), version: v.number)
        }
    }

    /// The `k` best of `items` for user `uid`, or of the whole catalogue when `items` is nil,
    /// with a bounded heap. Duplicate candidates count once. Items in `exclude` (unknown ids are
    /// ignored) and, with `excludeObserved`, items the user has rated or observed are left out.
    /// O(n·d + n log k) for n candidates, plus O(e log e) for e excluded items.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownItem` (naming the first unknown
    ///   candidate) or `invalidArgument` for k < 1.
    public func topK(model: String, uid: String, k: Int, items: [String]?,
                     exclude: [String] = [], excludeObserved: Bool = false) throws -> Ranking {
        guard k >= 1 else { throw OspreyError(.invalidArgument, "k must be at least 1") }
        let state = try registry.model(model).current
        let v = state.version
        let features = v.features
        var excluded = exclude.compactMap { features.catalog.row(of: $0) }
        if excludeObserved { excluded += state.observed.rows(of: uid) }
        excluded.sort()
        var rows: [Int]?
        if let items {
            var seen = Set<Int>(excluded)
            var list: [Int] = []
            list.reserveCapacity(items.count)
            for item in items {
                guard let row = features.catalog.row(of: item) else {
                    throw OspreyError.unknownItem(item, model: model, version: v.number)
                }
                if seen.insert(row).inserted { list.append(row) }
            }
            rows = list
        }
        var selector = TopKSelector(k: k)
        withWeights(state, uid) { w in
            if let rows {
                for row in rows { selector.offer(index: row, score: features.score(weights: w, item: row)) }
            } else {
                Self.scanCatalogue(features, weights: w, excluding: excluded, into: &selector)
            }
        }
        return Ranking(items: selector.sorted().map { (features.catalog.ids[$0.index], $0.score) }, version: v.number)
    }

    /// Ranks the whole catalogue with the features' scan table (``ItemScanTable``: a blocked
    /// Float32 scan for small catalogues, an 8-bit scan with error bounds and exact rescoring for
    /// large ones; the same exact answer). Rows in `excluded` (ascending) are left out.
    /// O(items·d + items·log k) at worst; the quantized scan reads ~d bytes per item.
    static func scanCatalogue(_ features: MaterializedFeatures, weights: UnsafePointer<Float>, excluding excluded: [Int],
                              into selector: inout TopKSelector) {
        features.scanTable.selectTopK(query: weights, excluding: excluded, into: &selector)
    }

    /// Copies the user's weights (or the prior) into a stack buffer, so scoring runs without
    /// holding the user's lock. O(d).
    func withWeights<R>(_ state: ServingState, _ uid: String, _ body: (UnsafePointer<Float>) -> R) -> R {
        let v = state.version
        let stride = v.features.stride
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: stride) { buffer in
            let p = buffer.baseAddress!
            let known = state.users.read(uid) { w -> Bool in
                guard let w, w.ridge.stride == stride else { return false }
                w.ridge.weights.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: stride) }
                return true
            }
            if !known {
                for k in 0..<stride { p[k] = k < v.prior.count ? v.prior[k] : 0 }
            }
            return body(p)
        }
    }
}
