import OspreyModel
import OspreyStorage
import Synchronization

/// What a model serves at one moment: an immutable version, the users' weights learned on top of
/// it, and the items each user has rated (shared with the model's other states). Swapped whole
/// when a retrain or rollback finishes, so a reader always sees them together.
public final class ServingState: Sendable {
    public let version: ModelVersion
    public let users: UserWeightStore
    public let observed: ObservedItems
    /// Prequential loss of this version's observations, and whether it has gone stale.
    let monitor: Mutex<QualityMonitor>
    /// Answers computed from this state (Velox §5); a new state starts a new cache.
    public let predictions: PredictionCache
    /// The version's hottest item vectors, kept in front of its feature table (nil when not
    /// configured; see ``FeatureCache``). Counts into the model's metrics, shared by its
    /// versions.
    public var featureCache: FeatureCache<MaterializedFeatures>? { features.tableCache }
    /// The model's catalogue: items' attributes and hidden flags (shared by its states).
    public let catalogue: ItemCatalogue
    /// What this state scores with: the version's trained table, then the catalogue's items
    /// computed from their attributes (``ServingFeatures``), with the rows items learned online
    /// as last published (``publishItems()``). Read it once per answer: all of one answer's
    /// scores then come from one publication.
    public var features: ServingFeatures { fixed ?? published.withLock { $0 } }
    /// The features when items do not learn online: they never change, so reads take no lock.
    private let fixed: ServingFeatures?
    private let published: Mutex<ServingFeatures>
    /// The items' online states (nil: item updates off; docs/architecture.md, "Items learn online").
    let itemLearner: ItemLearner?
    /// Makes the table's feature cache for a new table.
    private let tableCache: @Sendable (MaterializedFeatures) -> FeatureCache<MaterializedFeatures>?
    /// Which rows are hidden or served from attributes, as of a catalogue generation.
    private let itemView = Mutex<ItemView?>(nil)
    /// Which observations are the validation sample.
    let validation: QualityMonitor.Configuration
    /// How a cluster node reads a user it has not held yet from the stores (nil: not a cluster
    /// node; every user was loaded at start).
    let adopter: UserWeightStore.Adopt?

    /// - Parameters:
    ///   - baselineAtMost: a baseline met before (by the version this one replaces); the
    ///     monitor's baseline is the lower of it and this version's validation loss.
    ///   - features: this state's feature cache, recording into `featureMetrics`.
    ///   - computedFeatures: the cache of vectors computed from attributes, recording into
    ///     `computedMetrics`.
    ///   - itemLearner: the items' online states, or nil when items do not learn online.
    init(version: ModelVersion, users: UserWeightStore, observed: ObservedItems = ObservedItems(),
         catalogue: ItemCatalogue = ItemCatalogue(), itemLearner: ItemLearner? = nil,
         monitor: QualityMonitor.Configuration = .init(), baselineAtMost: Double? = nil,
         predictions: PredictionCache = PredictionCache(),
         features: FeatureCacheConfiguration = .init(), featureMetrics: CacheMetrics = .init(countsStale: false),
         computedFeatures: FeatureCacheConfiguration = .init(capacity: FeatureCacheConfiguration.computedDefault),
         computedMetrics: CacheMetrics = .init(countsStale: false), adopter: UserWeightStore.Adopt? = nil) {
        self.version = version
        self.adopter = adopter
        self.users = users
        self.observed = observed
        self.catalogue = catalogue
        self.predictions = predictions
        self.itemLearner = itemLearner
        let computed = ComputedFeatures(version.computedFeatures, source: catalogue)
        let tableCache: @Sendable (MaterializedFeatures) -> FeatureCache<MaterializedFeatures>? = { [features] table in
            features.capacity > 0 ? FeatureCache(table, capacity: features.capacity, policy: features.policy, metrics: featureMetrics) : nil
        }
        self.tableCache = tableCache
        var served = ServingFeatures(
            table: version.features,
            tableCache: tableCache(version.features),
            computed: computed,
            computedCache: computedFeatures.capacity > 0
                ? FeatureCache(computed, capacity: computedFeatures.capacity, policy: computedFeatures.policy, metrics: computedMetrics)
                : nil,
            catalogue: catalogue)
        if let itemLearner {
            // The rows a snapshot or a start gave the items, published before anything is served.
            served = served.publishing(itemLearner.takeUnpublished(stride: served.stride), tableCache: tableCache)
        }
        published = Mutex(served)
        fixed = itemLearner == nil ? served : nil
        validation = monitor
        let own = version.metadata.validationRMSE.map { $0 * $0 }
        let baseline = [own, baselineAtMost].compactMap { $0 }.min()
        self.monitor = Mutex(QualityMonitor(configuration: monitor, baseline: baseline))
    }

    /// The rows of this version's catalogue that `uid` has rated or observed, each once, in no
    /// particular order.
    /// - Throws: what the store's read throws.
    public func observedRows(of uid: String) throws -> [Int] {
        try observed.items(of: uid).compactMap { features.row(of: $0) }
    }

    /// `offset_i + w · f_i` for row `item` (``ServingFeatures``), through the feature caches
    /// when there are. O(d) on a hit or without a cache.
    func score(weights: UnsafePointer<Float>, item: Int) -> Float {
        features.score(weights: weights, item: item)
    }

    /// Publishes the rows items learned online since the last publication to ``features``, then
    /// invalidates the cached answers (their scores used the old rows). Returns the rows
    /// published. O(items · d) when a trained item changed (a new table and scan table), else
    /// O(changed · d); the learner's lock is held only while the changed rows are copied.
    @discardableResult
    func publishItems() -> Int {
        guard let itemLearner else { return 0 }
        let current = features
        let rows = itemLearner.takeUnpublished(stride: current.stride)
        guard !rows.isEmpty else { return 0 }
        let next = current.publishing(rows, tableCache: tableCache)
        // Only the publisher replaces the features, so nothing was published in between. The
        // cache's generation moves under the same lock: an answer that reads the new rows reads
        // the new generation, and no cached answer of the old rows serves after it.
        published.withLock { features in
            features = next
            predictions.invalidateAll()
        }
        return rows.count
    }

    /// The rows a whole-catalogue answer leaves out or adds to the trained table's scan.
    struct ItemView {
        /// The catalogue generation and the features' publication it was made at.
        var generation: Int
        var publication: Int
        /// Hidden rows, ascending.
        var hidden: [Int]
        /// Visible rows past the trained table (catalogue items the version has no vector for),
        /// ascending.
        var computed: [Int]
        /// Their vectors as one table (its row j is row `computed[j]`), scanned like the trained
        /// table; nil when there are none.
        var table: MaterializedFeatures?
        /// The catalogue revision each computed row's vector was taken at.
        var revisions: [Int]
    }

    /// The rows hidden and the rows computed from attributes (with their vectors as a table), as
    /// the catalogue and `features` hold them now; made again when the catalogue changed or
    /// rows were published. A computed row's vector is taken again only when its item changed
    /// (or, after a publication, when it has an online row); the others are copied from the
    /// last view. O(1), or O(catalogue · d) plus the changed items' vectors.
    func items(_ features: ServingFeatures) -> ItemView {
        let generation = catalogue.generation, publication = features.publication
        let old = itemView.withLock { $0 }
        if let old, old.generation == generation, old.publication == publication { return old }
        var view = ItemView(generation: generation, publication: publication, hidden: [], computed: [], table: nil, revisions: [])
        let n = features.trained
        var ids: [String] = []
        for (index, item) in catalogue.view().enumerated() {
            let row = version.features.catalog.row(of: item.id) ?? n + index
            if item.hidden {
                view.hidden.append(row)
            } else if row >= n {
                view.computed.append(row)
                ids.append(item.id)
            }
        }
        view.hidden.sort()
        if !view.computed.isEmpty {
            let s = features.stride
            var table = [Float](repeating: 0, count: view.computed.count * s), offsets = [Float](repeating: 0, count: view.computed.count)
            var previous: [Int: Int] = [:]
            if let old { for (j, row) in old.computed.enumerated() { previous[row] = j } }
            table.withUnsafeMutableBufferPointer { t in
                for (j, row) in view.computed.enumerated() {
                    let index = row - n, revision = catalogue.revision(at: index)
                    view.revisions.append(revision)
                    let destination = t.baseAddress! + j * s
                    if let old, let k = previous[row], old.revisions[k] == revision,
                       old.publication == publication || features.online[index] == nil, let oldTable = old.table {
                        oldTable.withFeatures(item: k) { f, offset in
                            destination.update(from: f, count: s)
                            offsets[j] = offset
                        }
                    } else {
                        features.withFeatures(item: row) { f, offset in
                            destination.update(from: f, count: s)
                            offsets[j] = offset
                        }
                    }
                }
            }
            view.table = MaterializedFeatures(dimension: features.dimension, ids: ids, table: table, offsets: offsets)
        }
        itemView.withLock { $0 = view }
        return view
    }

    /// Makes the state's caches and users record their sizes in the model's metrics (it serves)
    /// or stop (it was replaced).
    func setLive(_ live: Bool) {
        users.metrics.live.store(live, ordering: .relaxed)
        predictions.metrics.live.store(live, ordering: .relaxed)
        featureCache?.metrics.live.store(live, ordering: .relaxed)
        features.computedCache?.metrics.live.store(live, ordering: .relaxed)
    }

    /// Makes sure a cluster node holds `uid` (``UserWeightStore/adopt(_:_:)``); a user the
    /// stores know nothing of is held (as the prior) only when `creating`, before it learns:
    /// reads of unknown users hold nothing. Nothing for a node that loaded every user at start.
    /// - Throws: ``OspreyError`` `unavailable` when the stores cannot be read.
    func adopt(_ uid: String, creating: Bool = false) throws {
        guard let adopter else { return }
        let v = version
        do {
            try users.adopt(uid) { uid in
                if let adopted = try adopter(uid) { return adopted }
                guard creating else { return nil }
                // Nothing stored or logged: what the first observation bootstraps from.
                return .init(weights: .bootstrapped(from: v), through: 0, replayed: false)
            }
        } catch {
            throw OspreyError(.unavailable, "user `\(uid)` could not be read from the store: \(error)")
        }
    }

    /// The quality monitor's state now.
    public var quality: QualityMonitor { monitor.withLock { $0 } }
}
