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

    /// Learns one logged observation (live and on replay alike, in log order): a user never seen
    /// starts from the version's prior (bootstrapping, Velox §5); a cold user is first rebuilt
    /// from stored state (see ``UserWeightStore``); an item the version does not know is counted
    /// but cannot move the weights; an observation in the validation sample is scored into the
    /// monitor's validation loss and counted, never learned. Returns true when this observation
    /// made the version stale. An observation answering an exploratory choice is also scored into
    /// the monitor's exploration pool. O(d²), plus a rebuild for a cold user.
    /// - Throws: when a cold user's stored state cannot be read; the user is then unchanged (the
    ///   log still holds the observation: the next rebuild of the user replays it).
    @discardableResult
    func learn(_ logged: LoggedObservation) throws -> Bool {
        guard let outcome = try learnUser(logged) else { return false }
        return record(outcome, answersExploration: logged.observation.answersExploration)
    }

    /// What an observation taught a user (``apply(_:to:features:items:validation:recorded:reading:)``'s outcome),
    /// for the monitor.
    typealias Outcome = (loss: Double, heldOut: Bool)

    /// ``learn(_:)`` without the monitor: the user's side only. Returns the outcome to record
    /// (nil: none).
    private func learnUser(_ logged: LoggedObservation) throws -> Outcome? {
        let o = logged.observation
        let v = version
        // A cluster node learns only users it holds: adopted when the observation was accepted,
        // unless dropped since with a bucket the node lost (its new owner learns it; drops and
        // learning take turns under the learning lock). And an adopted user's state already
        // holds what its adoption read of the log.
        if adopter != nil {
            guard let through = users.adoptedThrough(o.uid) else { return nil }
            if logged.seq <= through { return nil }
        }
        // Recorded before the user's epoch moves (the update counts the observation): an answer
        // computed at the new epoch, and cached under it, excludes the item.
        observed.insert(uid: o.uid, item: o.item)
        let entry = users.recent.record(logged), recent = users.recent
        let features = self.features, items = itemLearner
        // With item updates, what the update reads of its item is recorded with it, so that a
        // user the catch-up demotes is rebuilt with the same updates.
        let reading = items == nil ? nil : entry.map { i in { (input: RecentObservations.ItemInput) in recent.attach(input, to: i) } }
        return try users.update(o.uid, before: logged.seq, create: { .bootstrapped(from: v) }) { w in
            Self.apply(logged, to: &w, features: features, items: items.map { ($0, true) }, validation: validation, reading: reading)
        }
    }

    /// Records an observation's outcome in the monitor. Returns true when it made the version stale.
    private func record(_ outcome: Outcome, answersExploration: Bool) -> Bool {
        monitor.withLock { m in
            if outcome.heldOut {
                m.recordValidation(outcome.loss)
                return false
            }
            let stale = m.record(outcome.loss)
            return answersExploration ? m.recordExploration(outcome.loss) || stale : stale
        }
    }

    /// Applies one logged observation to a user's state: counted only for an item neither the
    /// version nor the catalogue knows, scored for the validation sample, learned otherwise (a
    /// catalogue item with its vector computed from its attributes as they are now). With item
    /// updates (`items`), the item's live row is used, and first, when `learning` the items too,
    /// the item learns the observation with the user's weights as they are before it (an item
    /// unknown until then joins the catalogue, ``ItemCatalogue/addObserved(_:)``). Returns
    /// its squared prequential error and whether it was held out (nil for an unknown item).
    /// With item updates, `reading` is told what the update read of the item, and a `recorded`
    /// input (a rebuild's, ``RecentObservations``) is learned instead of the item's row as it is
    /// now. O(d²).
    static func apply(_ logged: LoggedObservation, to w: inout UserWeights, features: ServingFeatures,
                      items: (learner: ItemLearner, learning: Bool)? = nil,
                      validation: QualityMonitor.Configuration, recorded: RecentObservations.ItemInput? = nil,
                      reading: ((RecentObservations.ItemInput) -> Void)? = nil) -> (loss: Double, heldOut: Bool)? {
        let o = logged.observation
        let heldOut = validation.holdsOut(seq: logged.seq)
        if let input = recorded {
            return input.features.withUnsafeBufferPointer { f in
                let target = o.label - input.offset
                if heldOut { return (w.countHeldOut(features: f.baseAddress!, target: target), true) }
                return (w.learn(features: f.baseAddress!, target: target, scored: input.scored), false)
            }
        }
        func read(_ f: UnsafePointer<Float>, _ offset: Float, scored: Double) {
            reading?(.init(features: Array(UnsafeBufferPointer(start: f, count: features.stride)), offset: offset, scored: scored))
        }
        var known = features.row(of: o.item)
        if known == nil, let items, items.learning, !heldOut {
            // Learned by its item, an item unknown until now joins the catalogue.
            features.catalogue.addObserved(o.item)
            known = features.row(of: o.item)
        }
        guard let row = known else {
            w.countWithoutLearning()
            return nil
        }
        func learn(_ f: UnsafePointer<Float>, _ offset: Float) -> (loss: Double, heldOut: Bool) {
            if heldOut { return (w.countHeldOut(features: f, target: o.label - offset), true) }
            return (w.learn(features: f, target: o.label - offset), false)
        }
        guard let items else { return features.withFeatures(item: row, learn) }
        guard items.learning, !heldOut else {
            return items.learner.withRow(row, features: features) { f, offset in
                read(f, offset, scored: 0)
                return learn(f, offset)
            }
        }
        // Scored before the item learns: the prequential error must not know the label.
        let scored = items.learner.withRow(row, features: features) { f, offset in
            let error = Double(o.label - offset - w.ridge.predict(f))
            return error * error
        }
        w.ridge.weights.withUnsafeBufferPointer { user in
            items.learner.learn(row: row, userWeights: user.baseAddress!, label: o.label, seq: logged.seq, features: features)
        }
        return items.learner.withRow(row, features: features) { f, offset in
            read(f, offset, scored: scored)
            return (w.learn(features: f, target: o.label - offset, scored: scored), false)
        }
    }

    /// Learns the model's logged observations with sequence in (`after`, `through`], skipping
    /// what `snapshot` says a user's stored state already reflects, then publishes the item rows
    /// they moved (a state that starts or catches up serves its rows as learned, not as of its
    /// next publication). Returns the last sequence seen.
    ///
    /// `bounded` (a state catching up before it serves, see ``UserWeightStore/demote(toAtMost:)``)
    /// keeps at most about twice its `hotUsers` hot at any time, and that many at the end.
    /// Without item updates users learn independently of one another, so the log is learned in
    /// spans of `span` observations, user by user: each user's observations in log order, the
    /// monitor's outcomes in log order after each span; the states are those of learning in log
    /// order, while a demoted user is rebuilt once a span instead of once for each of its
    /// observations. With item updates the log is learned in log order, and a demoted user's
    /// rebuild learns what its updates read of their items as they ran (``RecentObservations``).
    @discardableResult
    func replay(log: any ObservationLog, after: Int64, through: Int64 = .max, skipping snapshot: UserSnapshot? = nil,
                bounded bound: CatchUpBound? = nil) throws -> Int64 {
        defer { publishItems() }
        var last = after, span: [LoggedObservation] = []
        defer { if let bound { users.demote(toAtMost: bound.hotUsers) } }
        // Pages of the log, so no read stays open while a cold user's rebuild reads the store.
        pages: while last < through {
            let page = try log.observations(model: version.model, after: last, limit: 10_000)
            for logged in page {
                guard logged.seq <= through else { break pages }
                last = logged.seq
                if let snapshot, snapshot.reflects(uid: logged.observation.uid, seq: logged.seq) { continue }
                guard let bound else {
                    try learn(logged)
                    continue
                }
                if itemLearner != nil {
                    // Users and items learn from one another: in log order, one at a time.
                    try learn(logged)
                    if users.hotCount > 2 * bound.hotUsers { users.demote(toAtMost: bound.hotUsers) }
                    continue
                }
                span.append(logged)
                if span.count == bound.span {
                    try learnByUser(span, holdingAtMost: bound.hotUsers)
                    span.removeAll(keepingCapacity: true)
                }
            }
            if page.count < 10_000 { break }
        }
        if let bound, !span.isEmpty { try learnByUser(span, holdingAtMost: bound.hotUsers) }
        return last
    }

    /// How a state catching up before it serves bounds its hot users: at most `hotUsers` (twice
    /// that between passes), learning the log user by user `span` observations at a time
    /// (``Manager/Configuration/catchUpHotUsers``, ``Manager/Configuration/catchUpSpan``).
    struct CatchUpBound {
        var hotUsers: Int
        var span: Int
    }

    /// Learns `span` (in log order) user by user, demoting users whenever more than twice
    /// `bound` are hot, then records the outcomes in the monitor in log order.
    private func learnByUser(_ span: [LoggedObservation], holdingAtMost bound: Int) throws {
        // Each user's observations (their indices in `span`), users in order of first appearance.
        var groupOf: [String: Int] = [:], groups: [[Int]] = []
        for (i, logged) in span.enumerated() {
            if let g = groupOf[logged.observation.uid] {
                groups[g].append(i)
            } else {
                groupOf[logged.observation.uid] = groups.count
                groups.append([i])
            }
        }
        var outcomes: [(index: Int, outcome: Outcome)] = []
        outcomes.reserveCapacity(span.count)
        for group in groups {
            for i in group {
                if let outcome = try learnUser(span[i]) { outcomes.append((i, outcome)) }
            }
            if users.hotCount > 2 * bound { users.demote(toAtMost: bound) }
        }
        outcomes.sort { $0.index < $1.index }
        for (i, outcome) in outcomes { _ = record(outcome, answersExploration: span[i].observation.answersExploration) }
    }
}

extension UserWeights {
    /// A user never seen, as version `v` starts it: its prior, the mean of all users' weights
    /// (bootstrapping, Velox §5). O(d²).
    static func bootstrapped(from v: ModelVersion) -> UserWeights {
        UserWeights(ridge: .init(prior: v.prior, lambda: v.lambda), bootstrapped: true)
    }
}
