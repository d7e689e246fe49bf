import OspreyMath
import OspreyModel

/// Answers `predict` and `topK` (Velox §5): `w_u · f(x; θ)` plus the item's offset, computed live
/// from the serving version (or, during a competition, the version the user is allocated to) and
/// the user's current weights. A user never seen is scored with the
/// version's prior (the mean of all users' weights).
public struct Predictor: Sendable {
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

    /// The score of `item` for user `uid`, from the prediction cache when the user has not
    /// changed since it was computed. O(d).
    /// - Throws: ``OspreyError`` `unknownModel` or `unknownItem`.
    public func predict(model: String, uid: String, item: String) throws -> Prediction {
        let state = try registry.state(model: model, uid: uid)
        guard let row = state.features.row(of: item) else {
            throw OspreyError.unknownItem(item, model: model, version: state.version.number)
        }
        guard case .score(let score) = try Self.answer(.score(item: row), uid: uid, in: state) else {
            preconditionFailure("a score query is answered with a score")
        }
        return Prediction(score: score, version: state.version.number)
    }

    /// The `k` best of `items` for user `uid`, or of the whole catalogue when `items` is nil,
    /// with a bounded heap; from the prediction cache when the user has not changed since the
    /// same request was answered. Duplicate candidates count once. Hidden items, items in
    /// `exclude` (unknown ids are ignored) and, with `excludeObserved`, items the user has rated
    /// or observed are left out. The whole catalogue is the version's trained items and the
    /// catalogue's other items, scored from their attributes. O(n·d + n log k) for n candidates,
    /// plus O(e log e) for e excluded items.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownItem` (naming the first unknown
    ///   candidate) or `invalidArgument` for k < 1.
    public func topK(model: String, uid: String, k: Int, items: [String]?,
                     exclude: [String] = [], excludeObserved: Bool = false) throws -> Ranking {
        guard k >= 1 else { throw OspreyError(.invalidArgument, "k must be at least 1") }
        let state = try registry.state(model: model, uid: uid)
        let query = PredictionCache.RankingQuery(k: k, items: items, exclude: exclude, excludeObserved: excludeObserved)
        guard case .ranking(let ranked) = try Self.answer(.ranking(query), uid: uid, in: state) else {
            preconditionFailure("a ranking query is answered with a ranking")
        }
        return Ranking(items: ranked, version: state.version.number)
    }

    /// Answers `query` for `uid` from `state`: its prediction cache when the entry is as new as the
    /// user's weights, else computed and cached. Without `lookup`, computes and caches without
    /// looking (or counting a miss): how a new version's cache is repopulated.
    /// - Throws: ``OspreyError`` `unknownItem` for a ranking naming an item the version lacks.
    static func answer(_ query: PredictionCache.Query, uid: String, in state: ServingState,
                       lookup: Bool = true) throws -> PredictionCache.Answer {
        // Read before the weights: an erasure between the two makes the answer stale at once.
        let generation = state.predictions.generation
        return try withWeights(state, uid) { w, epoch in
            let cache = state.predictions
            // The key (and its hash) only for queries this cache keeps: not on the default predict path.
            let key = cache.caches(query) ? PredictionCache.Key(uid: uid, query: query) : nil
            if lookup, let key, let hit = cache.lookup(key, epoch: epoch) { return hit }
            let answer: PredictionCache.Answer
            switch query {
            case .score(let row):
                answer = .score(state.score(weights: w, item: row))
            case .ranking(let q):
                answer = .ranking(try rank(q, uid: uid, weights: w, in: state))
            }
            if let key { cache.store(answer, for: key, epoch: epoch, generation: generation) }
            return answer
        }
    }

    /// The request's inline items the model does not hold (an id it holds is ranked as it holds
    /// it), first occurrences only, without the excluded ids. O(inline).
    static func newInline(_ inline: [(id: String, attributes: ItemAttributes)], exclude: [String],
                          in state: ServingState) -> [(id: String, attributes: ItemAttributes)] {
        guard !inline.isEmpty else { return [] }
        var seen = Set(exclude)
        return inline.filter { state.features.row(of: $0.id) == nil && seen.insert($0.id).inserted }
    }

    /// The `k` best of `ranked` (a ranking of the model's items) and the `inline` items, scored
    /// from their attributes by the version's computed feature function with the user's weights:
    /// not stored, not cached. O(inline · (tokens + 1) · d + (k + inline) log k).
    static func mergeInline(_ ranked: [(item: String, score: Float)], _ inline: [(id: String, attributes: ItemAttributes)],
                            k: Int, uid: String, in state: ServingState) -> [(item: String, score: Float)] {
        let scored = withWeights(state, uid) { w, _ in inline.map { (item: $0.id, score: score(inline: $0.attributes, weights: w, in: state)) } }
        var all = ranked
        all.append(contentsOf: scored)
        var selector = TopKSelector(k: k)
        for (index, entry) in all.enumerated() { selector.offer(index: index, score: entry.score) }
        return selector.sorted().map { all[$0.index] }
    }

    /// `offset + w · f` for an item with `attributes`, computed by the version's computed feature
    /// function. O((tokens + 1) · d).
    static func score(inline attributes: ItemAttributes, weights w: UnsafePointer<Float>, in state: ServingState) -> Float {
        let v = state.version
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: v.features.stride) { f in
            let offset = v.computedFeatures.features(of: attributes, into: f.baseAddress!)
            return offset + VectorKernels.dot(w, f.baseAddress!, count: v.features.stride)
        }
    }

    /// The score of an item the model does not hold, from the request's `attributes`, for user
    /// `uid`; an item the model holds is scored as it holds it (``predict(model:uid:item:)``).
    /// Not stored, not cached. O((tokens + 1) · d).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func predict(model: String, uid: String, item: String, attributes: ItemAttributes) throws -> Prediction {
        let state = try registry.state(model: model, uid: uid)
        if state.features.row(of: item) != nil { return try predict(model: model, uid: uid, item: item) }
        let score = Self.withWeights(state, uid) { w, _ in Self.score(inline: attributes, weights: w, in: state) }
        return Prediction(score: score, version: state.version.number)
    }

    /// Computes a ranking with the user's weights `w`.
    static func rank(_ q: PredictionCache.RankingQuery, uid: String, weights w: UnsafePointer<Float>,
                     in state: ServingState) throws -> [(item: String, score: Float)] {
        let features = state.features
        return try rankRows(q, uid: uid, weights: w, in: state).map { (features.id(of: $0.index), $0.score) }
    }

    /// Computes a ranking with the user's weights `w`, as catalogue rows and scores, best first.
    static func rankRows(_ q: PredictionCache.RankingQuery, uid: String, weights w: UnsafePointer<Float>,
                         in state: ServingState) throws -> [(index: Int, score: Float)] {
        let features = state.features
        var selector = TopKSelector(k: q.k)
        if let items = q.items {
            for row in try candidateRows(q, items: items, uid: uid, in: state) {
                selector.offer(index: row, score: features.score(weights: w, item: row))
            }
        } else {
            let view = state.items(features)
            var excluded = q.exclude.compactMap { features.row(of: $0) }
            if q.excludeObserved { excluded += try state.observedRows(of: uid) }
            excluded += view.hidden
            excluded.sort()
            // The trained table's scan skips rows past it; the catalogue's other items are scanned
            // as a table of their own (its row j is row view.computed[j]).
            scanCatalogue(features.table, weights: w, excluding: excluded, into: &selector)
            if let table = view.table {
                let local = excluded.compactMap { row in view.computed.sortedIndex(of: row) }
                var computed = TopKSelector(k: q.k)
                scanCatalogue(table, weights: w, excluding: local, into: &computed)
                for entry in computed.sorted() { selector.offer(index: view.computed[entry.index], score: entry.score) }
            }
        }
        return selector.sorted().map { ($0.index, $0.score) }
    }

    /// The request's candidate items as rows (``ServingFeatures``), first occurrences only,
    /// without hidden items and the excluded ones (and, with `excludeObserved`, the user's rated
    /// ones).
    /// - Throws: ``OspreyError`` `unknownItem` naming the first unknown item.
    static func candidateRows(_ q: PredictionCache.RankingQuery, items: [String], uid: String, in state: ServingState) throws -> [Int] {
        let v = state.version
        let features = state.features
        var seen = Set(q.exclude.compactMap { features.row(of: $0) })
        if q.excludeObserved { seen.formUnion(try state.observedRows(of: uid)) }
        seen.formUnion(state.items(features).hidden)
        var rows: [Int] = []
        rows.reserveCapacity(items.count)
        for item in items {
            guard let row = features.row(of: item) else { throw OspreyError.unknownItem(item, model: v.model, version: v.number) }
            if seen.insert(row).inserted { rows.append(row) }
        }
        return rows
    }

    /// Ranks the whole catalogue with the features' scan table (``ItemScanTable``: a blocked
    /// Float32 scan for small catalogues, an 8-bit scan with error bounds and exact rescoring for
    /// large ones; the same exact answer). Rows in `excluded` (ascending) are left out.
    /// O(items·d + items·log k) at worst; the quantized scan reads ~d bytes per item.
    static func scanCatalogue(_ features: MaterializedFeatures, weights: UnsafePointer<Float>, excluding excluded: [Int],
                              into selector: inout TopKSelector) {
        features.scanTable.selectTopK(query: weights, excluding: excluded, into: &selector)
    }

    /// Copies the user's weights (or the prior) from the cold tier, which holds every user's, into a stack buffer, so scoring runs without
    /// holding the user's lock, and passes them with the user's epoch (observations learned; -1
    /// for a user never seen). O(d).
    static func withWeights<R>(_ state: ServingState, _ uid: String, _ body: (UnsafePointer<Float>, Int) throws -> R) rethrows -> R {
        let v = state.version
        let stride = state.features.stride
        return try withUnsafeTemporaryAllocation(of: Float.self, capacity: stride) { buffer in
            let p = buffer.baseAddress!
            let epoch = state.users.read(uid) { w -> Int? in
                guard let w, state.users.stride == stride else { return nil }
                p.update(from: w.weights, count: stride)
                return w.observations
            }
            if epoch == nil {
                for k in 0..<stride { p[k] = k < v.prior.count ? v.prior[k] : 0 }
            }
            return try body(p, epoch ?? -1)
        }
    }
}
