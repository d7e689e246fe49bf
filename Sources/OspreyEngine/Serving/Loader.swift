import OspreyModel
import OspreyStorage

/// Builds the serving state of a version (TensorFlow Serving's *loader*): every place that makes
/// a version servable — a start, a rollback, a challenger, a retrain's new version — goes
/// through it, so they all restore users, caches and monitors alike.
struct Loader: Sendable {
    let stores: Stores
    let configuration: Manager.Configuration
    /// A cluster node's loader: a state starts with no users, and adopts each when first served
    /// (``adopter(_:observed:catalogue:)``); none is learned that the node does not own.
    var adopting = false
    /// A cluster node's name and where the nodes exchange what they learn of items: with item
    /// updates, a state's items start from the version's states plus every node's sums.
    var sharedItems: (node: String, store: any ItemContributionStore)?

    /// What a new state continues from the model (whether it replaces the serving state or
    /// joins it as a challenger): its metrics, its record of rated items, its item catalogue
    /// and its hot-state recycler. A first load has the model's new metrics and recycler, and
    /// reads the others from the stores.
    struct Continuing {
        var metrics: ModelMetrics
        var observed: ObservedItems?
        var catalogue: ItemCatalogue?
        var recycler: HotStateRecycler

        /// Continues `model`'s current state.
        init(_ model: ServedModel) {
            metrics = model.metrics
            observed = model.current.observed
            catalogue = model.current.catalogue
            recycler = model.current.users.recycler
        }

        /// A model's first load, with its metrics.
        init(metrics: ModelMetrics) {
            self.metrics = metrics
            recycler = HotStateRecycler()
        }
    }

    /// Restores version `number` of `model` from the stores, then learns the log after its
    /// snapshot up to `through` in log order exactly as it was live. Tiered
    /// (``Manager/Configuration/hotUsers`` < `Int.max`), it loads only every user's compact row
    /// (`w_u` and the small fields; cold) — full states are read on a miss; untiered, every
    /// user's full state. With `warmStart` (tiered only), the users hot at the version's last
    /// snapshot are named for ``UserWeightStore/warmStartList``. Returns the state and the last
    /// sequence it reflects. `baselineAtMost` holds it to the best baseline the model has met (a
    /// retrain's version). O(users · d) tiered, O(users · d²) untiered, plus the replay.
    /// - Throws: ``StorageError`` when the stores cannot be read.
    func load(model: String, version number: Int, through: Int64 = .max, continuing: Continuing,
              warmStart: Bool = false, baselineAtMost: Double? = nil, catchingUp: Bool = false) throws -> (ServingState, Int64) {
        let version = try stores.versions.loadVersion(model: model, number: number)
        // A snapshot of users and items cut short puts back what it overwrote: the rows are one
        // cut again. Only such snapshots keep what they overwrite, and their kept copies stay
        // valid until a snapshot completes, so a start with item updates off can leave them.
        // A cluster node's snapshots keep nothing: its items are their version's states and the
        // nodes' published sums.
        if configuration.itemUpdates && !adopting { _ = try stores.snapshots.restoreInterruptedSnapshot(model: model, version: number) }
        let observed = continuing.observed ?? ObservedItems.stored(in: stores, model: model)
        let catalogue = try continuing.catalogue ?? ItemCatalogue.stored(in: stores, model: model)
        let metrics = continuing.metrics.forState()
        let learner = itemLearner(for: version)
        let users = userStore(for: version, observed: observed, catalogue: catalogue, items: learner, metrics: metrics.users,
                              recycler: continuing.recycler)
        if adopting {
            let through = try stores.log.lastSequence()
            if let learner { try restoreSharedItems(learner, version: version, catalogue: catalogue, seq: through) }
            let state = servingState(version, users: users, observed: observed, catalogue: catalogue, items: learner, metrics: metrics,
                                     adopter: adopter(version, observed: observed, catalogue: catalogue, items: learner))
            return (state, through)
        }
        let snapshot: UserSnapshot
        if users.hotUsers == .max {
            var full = try stores.snapshots.loadSnapshot(model: model, version: number, dimension: version.dimension)
            users.reserve(users: full.users.count)
            // Packed one by one, so the unpacked states are not all held twice.
            while let (uid, w) = full.users.popFirst() { users.insertHot(uid, w) }
            snapshot = UserSnapshot(seq: full.seq, users: [:], ahead: full.ahead)
        } else {
            let seq = try stores.snapshots.snapshotSequence(model: model, version: number)
            users.reserve(users: try stores.snapshots.userCount(model: model, version: number))
            var ahead: [String: Int64] = [:]
            try stores.snapshots.forEachStoredWeights(model: model, version: number, dimension: version.dimension) { row in
                users.insertCold(row)
                if row.seq > seq { ahead[row.uid] = row.seq }
            }
            if warmStart { users.setWarmStart(try stores.snapshots.hotUsers(model: model, version: number)) }
            snapshot = UserSnapshot(seq: seq, users: [:], ahead: ahead)
        }
        if let learner {
            try restoreItems(learner, version: version, catalogue: catalogue, users: users, seq: snapshot.seq, ratings: nil)
        }
        let state = servingState(version, users: users, observed: observed, catalogue: catalogue, items: learner, metrics: metrics,
                                 baselineAtMost: baselineAtMost)
        let bound = catchingUp ? catchUpBound(for: state) : nil
        if bound != nil { users.beginCatchUp(from: snapshot.seq + 1) }
        let last = try state.replay(log: stores.log, after: snapshot.seq, through: through, skipping: snapshot, bounded: bound)
        return (state, max(last, snapshot.seq))
    }

    /// The state of a version a retrain just stored, from its users' weights as they were
    /// written (``Stores/storeVersion(_:reflecting:trainingRatings:serve:stored:each:)``):
    /// compact rows (`cold`, tiered) or full states (`hot`, untiered). It reflects the log up to
    /// what they reflect; the install replays the rest. `baselineAtMost` holds it to the best
    /// baseline the model has met. With item updates, the items' states start from `ratings`
    /// (the ratings it was trained on) and are stored with it (``restoreItems``). O(users · d),
    /// or O(users · d²) untiered, plus the items' states.
    /// - Throws: ``StorageError`` when a first load cannot read the item catalogue or the items'
    ///   states cannot be stored.
    func load(trained version: ModelVersion, cold: [StoredWeights], hot: [(uid: String, weights: UserWeights)],
              ratings: [Rating], baselineAtMost: Double?, continuing: Continuing) throws -> ServingState {
        let observed = continuing.observed ?? ObservedItems.stored(in: stores, model: version.model)
        let catalogue = try continuing.catalogue ?? ItemCatalogue.stored(in: stores, model: version.model)
        let metrics = continuing.metrics.forState()
        let learner = itemLearner(for: version)
        let users = userStore(for: version, observed: observed, catalogue: catalogue, items: learner, metrics: metrics.users,
                              recycler: continuing.recycler)
        users.reserve(users: cold.count + hot.count)
        for row in cold { users.insertCold(row) }
        for (uid, w) in hot { users.insertHot(uid, w) }
        if let learner {
            try restoreItems(learner, version: version, catalogue: catalogue, users: users,
                             seq: version.metadata.trainedThroughSeq ?? 0, ratings: ratings)
        }
        return servingState(version, users: users, observed: observed, catalogue: catalogue, items: learner, metrics: metrics,
                            baselineAtMost: baselineAtMost)
    }

    /// An empty item learner for `version` when items learn online, else nil: tiered
    /// (``Manager/Configuration/hotItems``) on a lone process, reading a cold item's state from
    /// the version's stored ones.
    private func itemLearner(for version: ModelVersion) -> ItemLearner? {
        guard configuration.itemUpdates else { return nil }
        let ridge = ItemRidge(version: version)
        if let node = sharedItems?.node { return ItemLearner(ridge: ridge, lambda: version.lambda, node: node) }
        guard configuration.hotItems != .max else { return ItemLearner(ridge: ridge, lambda: version.lambda) }
        let snapshots = stores.snapshots, model = version.model, number = version.number, dimension = ridge.parameterCount
        return ItemLearner(ridge: ridge, lambda: version.lambda, hotItems: configuration.hotItems) { item in
            try snapshots.loadItemState(model: model, version: number, item: item, dimension: dimension)
                .map { ItemLearner.Item(ridge: $0.ridge, observations: $0.observations, seq: $0.seq) }
        }
    }

    /// A cluster node's items as a version serves them there: the version's stored states (or,
    /// for a version with none yet, the states its training ratings give with each rater's
    /// stored weights, stored for every node), then every node's published sums, this node's
    /// own included (its next publication continues from them). O(items · d²) plus the sums'
    /// solves.
    private func restoreSharedItems(_ learner: ItemLearner, version: ModelVersion, catalogue: ItemCatalogue, seq: Int64) throws {
        guard let shared = sharedItems else { preconditionFailure("a cluster node's items need the contribution store") }
        // Every user's stored weights, read only when the states must be computed.
        var weights: [String: [Float]]?
        try restoreItems(learner, version: version, catalogue: catalogue, userWeights: { uid in
            if weights == nil {
                var all: [String: [Float]] = [:]
                try stores.snapshots.forEachStoredWeights(model: version.model, version: version.number,
                                                          dimension: version.dimension) { all[$0.uid] = $0.weights }
                weights = all
            }
            return weights![uid]
        }, seq: version.metadata.trainedThroughSeq ?? seq, ratings: nil)
        let published = try shared.store.contributions(model: version.model, version: version.number,
                                                       dimension: learner.ridge.parameterCount, after: [:])
        learner.fold(published, features: ServingFeatures(uncached: version, catalogue: catalogue), own: true)
    }

    /// Gives `learner` the version's stored item states. A version with none (trained with item
    /// updates off, or just trained in this process) starts its trained items from `ratings` (or,
    /// when nil, its training ratings) with each rater's weights as `users` hold them, and
    /// stores them as reflecting `seq` (``Stores/startItemStates(of:ratings:userWeights:seq:threads:)``).
    /// O(items · d²) to read, or O(ratings · d² + items · d³) to start.
    private func restoreItems(_ learner: ItemLearner, version: ModelVersion, catalogue: ItemCatalogue, users: UserWeightStore,
                              seq: Int64, ratings: [Rating]?) throws {
        let d = version.dimension
        try restoreItems(learner, version: version, catalogue: catalogue,
                         userWeights: { uid in users.read(uid) { $0.map { Array(UnsafeBufferPointer(start: $0.weights, count: d)) } } },
                         seq: seq, ratings: ratings)
    }

    private func restoreItems(_ learner: ItemLearner, version: ModelVersion, catalogue: ItemCatalogue,
                              userWeights: (String) throws -> [Float]?, seq: Int64, ratings: [Rating]?) throws {
        let features = ServingFeatures(uncached: version, catalogue: catalogue)
        // A chunk at a time: a tiered learner keeps only its hot items' states.
        var items: [Int: ItemLearner.Item] = [:], stored = 0
        try stores.snapshots.forEachItemState(model: version.model, version: version.number,
                                              dimension: learner.ridge.parameterCount) { s in
            // An item first known by an observation is in no store's catalogue: its state brings it back.
            if features.row(of: s.item) == nil { catalogue.addObserved(s.item) }
            items[features.row(of: s.item)!] = .init(ridge: s.ridge, observations: s.observations, seq: s.seq)
            stored += 1
            if items.count == Self.itemRestoreChunk { learner.restore(items); items.removeAll(keepingCapacity: true) }
        }
        if stored == 0 {
            let states = try stores.startItemStates(of: version, ratings: try ratings ?? trainingRatings(of: version),
                                                    userWeights: userWeights, seq: seq, threads: configuration.retrainThreads)
            for (row, state) in states.enumerated() { items[row] = .init(ridge: state, observations: 0, seq: seq) }
        }
        learner.restore(items)
    }

    /// Item states handed to the learner at a time as a start reads them.
    static let itemRestoreChunk = 1_000

    /// The ratings version `version` was trained on, as a retrain gathers them: the model's
    /// initial ratings and its log up to the version's span, without the validation sample.
    /// O(ratings + log).
    private func trainingRatings(of version: ModelVersion) throws -> [Rating] {
        var ratings = try stores.versions.initialRatings(model: version.model)
        guard let through = version.metadata.trainedThroughSeq else { return ratings }
        try stores.log.forEachObservation(model: version.model, after: 0) { logged in
            guard logged.seq <= through, !configuration.monitor.holdsOut(seq: logged.seq) else { return }
            let o = logged.observation
            ratings.append(Rating(uid: o.uid, item: o.item, label: o.label, timestamp: o.time))
        }
        return ratings
    }

    private func userStore(for version: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue, items: ItemLearner?,
                           metrics: UserMetrics, recycler: HotStateRecycler) -> UserWeightStore {
        let recent = RecentObservations()
        return UserWeightStore(stride: version.features.stride, hotUsers: configuration.hotUsers,
                               rebuild: rebuilder(version, observed: observed, catalogue: catalogue, items: items, recent: recent),
                               metrics: metrics, recent: recent, recycler: recycler)
    }

    /// How a state catching up before it serves bounds its hot users (``ServingState/CatchUpBound``),
    /// or nil when it keeps all it learns: untiered, on a cluster node, or with a bound no lower
    /// than the hot tier's.
    func catchUpBound(for state: ServingState) -> ServingState.CatchUpBound? {
        state.users.isTiered && state.adopter == nil && !adopting
            && configuration.catchUpHotUsers < state.users.hotUsers
            ? .init(hotUsers: configuration.catchUpHotUsers, span: configuration.catchUpSpan) : nil
    }

    private func servingState(_ version: ModelVersion, users: UserWeightStore, observed: ObservedItems, catalogue: ItemCatalogue,
                              items: ItemLearner?, metrics: ModelMetrics.StateMetrics, baselineAtMost: Double? = nil,
                              adopter: UserWeightStore.Adopt? = nil) -> ServingState {
        ServingState(
            version: version, users: users, observed: observed, catalogue: catalogue, itemLearner: items, monitor: configuration.monitor,
            baselineAtMost: baselineAtMost,
            predictions: PredictionCache(configuration: configuration.predictionCache, metrics: metrics.predictions),
            features: configuration.featureCache, featureMetrics: metrics.features,
            computedFeatures: configuration.computedFeatureCache, computedMetrics: metrics.computed, adopter: adopter)
    }

    /// The sequence every stored user of `v` reflects; a version with no stored users (a model
    /// made empty) reflects what it was trained through.
    private static func snapshotSequence(of v: ModelVersion, in stores: Stores) throws -> Int64 {
        do {
            return try stores.snapshots.snapshotSequence(model: v.model, version: v.number)
        } catch let error as StorageError where error.code == .notFound {
            return v.metadata.trainedThroughSeq ?? 0
        }
    }

    /// How a cluster node adopts a user of version `v`: the log's last
    /// sequence is read first, then the user's snapshot row (or the prior, for a user the
    /// version stores none of, from the version's snapshot sequence), then the user's log after
    /// the row through that sequence, applied as ``ServingState/apply(_:to:features:items:validation:recorded:recording:)``
    /// applies it live (with item updates, against the items' rows as they are now, which do not
    /// learn it again: its node did) and recorded in `observed`. Nil for a user with neither row
    /// nor observation. O(d²) and two point reads, plus the user's observations since its row.
    private func adopter(_ v: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue, items: ItemLearner?) -> UserWeightStore.Adopt {
        let stores = stores, replay = userReplay(v, observed: observed, catalogue: catalogue, items: items)
        return { uid in
            let through = try stores.log.lastSequence()
            let stored = try stores.snapshots.loadUserState(model: v.model, version: v.number, uid: uid, dimension: v.dimension)
            var w = stored?.weights ?? .bootstrapped(from: v)
            let after = try stored?.seq ?? Self.snapshotSequence(of: v, in: stores)
            let replayed = through > after ? try replay(uid, (after + 1)..<(through + 1), &w) : false
            guard stored != nil || replayed else { return nil }
            return UserWeightStore.Adopted(weights: w, through: through, replayed: replayed)
        }
    }

    /// Learns user `uid`'s logged observations of version `v`'s model with sequence in a range
    /// into a state, as ``ServingState/apply(_:to:features:items:validation:recorded:recording:)`` applies them live
    /// (with item updates, against the items' live rows, which do not learn them again), and
    /// records them in `observed`. Returns whether there were any. O(the range's observations ·
    /// d²), plus a read of the log.
    /// With `recent`, a range it holds is read from it instead of the log (a user a catch-up
    /// demoted, ``UserWeightStore/demote(toAtMost:)``), with what each update read of its item.
    private func userReplay(_ v: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue, items: ItemLearner?,
                            recent: RecentObservations? = nil) -> @Sendable (String, Range<Int64>, inout UserWeights) throws -> Bool {
        let stores = stores, validation = configuration.monitor
        let features = ServingFeatures(uncached: v, catalogue: catalogue)
        return { uid, range, w in
            guard !range.isEmpty else { return false }
            var any = false
            func learn(_ logged: LoggedObservation, recorded: RecentObservations.ItemInput?) {
                _ = ServingState.apply(logged, to: &w, features: features, items: items.map { ($0, false) }, validation: validation,
                                       recorded: recorded)
                observed.insert(uid: uid, item: logged.observation.item)
                any = true
            }
            if let held = recent?.observations(of: uid, in: range) {
                for r in held {
                    learn(LoggedObservation(seq: r.seq, observation: Observation(model: v.model, uid: uid, item: r.item,
                                                                                 label: r.label, time: r.time)), recorded: r.input)
                }
            } else {
                try stores.log.forEachObservation(model: v.model, uid: uid, in: range) { learn($0, recorded: nil) }
            }
            return any
        }
    }

    /// How a cold user of version `v` is rebuilt: its full snapshot row (a point read); after a
    /// failed rebuild, also the user's log entries in the range asked for (those after the row),
    /// learned as ``userReplay(_:observed:catalogue:items:)`` learns them. O(d²), plus the replay.
    private func rebuilder(_ v: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue,
                           items: ItemLearner?, recent: RecentObservations? = nil) -> UserWeightStore.Rebuild {
        let stores = stores, learn = userReplay(v, observed: observed, catalogue: catalogue, items: items, recent: recent)
        return { uid, replay in
            guard let stored = try stores.snapshots.loadUserState(model: v.model, version: v.number, uid: uid, dimension: v.dimension) else {
                throw StorageError(.notFound, "user \(uid) of \(v.model) v\(v.number) has no stored state to rebuild from")
            }
            var w = stored.weights
            if let replay, replay.upperBound > stored.seq + 1 {
                _ = try learn(uid, max(replay.lowerBound, stored.seq + 1)..<replay.upperBound, &w)
            }
            return w
        }
    }
}

