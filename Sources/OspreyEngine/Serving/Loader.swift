import OspreyModel
import OspreyStorage

/// Builds the serving state of a version (TensorFlow Serving's *loader*): every place that makes
/// a version servable — a start, a rollback, a challenger, a retrain's new version — goes
/// through it, so they all restore users, caches and monitors alike.
struct Loader: Sendable {
    let stores: Stores
    let configuration: Manager.Configuration

    /// What a new state continues from the model (whether it replaces the serving state or
    /// joins it as a challenger): its metrics, its record of rated items and its item
    /// catalogue. A first load has the model's new metrics and reads the others from the stores.
    struct Continuing {
        var metrics: ModelMetrics
        var observed: ObservedItems?
        var catalogue: ItemCatalogue?

        /// Continues `model`'s current state.
        init(_ model: ServedModel) {
            metrics = model.metrics
            observed = model.current.observed
            catalogue = model.current.catalogue
        }

        /// A model's first load, with its metrics.
        init(metrics: ModelMetrics) {
            self.metrics = metrics
        }
    }

    /// Restores version `number` of `model` from the stores, then learns the log after its
    /// snapshot up to `through` in log order exactly as it was live. Tiered
    /// (``Manager/Configuration/hotUsers`` < `Int.max`), it loads only every user's compact row
    /// (`w_u` and the small fields; cold) — full states are read on a miss; untiered, every
    /// user's full state. With `warmStart` (tiered only), the users hot at the version's last
    /// snapshot are named for ``UserWeightStore/warmStartList``. Returns the state and the last
    /// sequence it reflects. O(users · d) tiered, O(users · d²) untiered, plus the replay.
    /// - Throws: ``StorageError`` when the stores cannot be read.
    func load(model: String, version number: Int, through: Int64 = .max, continuing: Continuing,
              warmStart: Bool = false) throws -> (ServingState, Int64) {
        let version = try stores.versions.loadVersion(model: model, number: number)
        let observed = continuing.observed ?? ObservedItems.stored(in: stores, model: model)
        let catalogue = try continuing.catalogue ?? ItemCatalogue.stored(in: stores, model: model)
        let metrics = continuing.metrics.forState()
        let users = userStore(for: version, observed: observed, catalogue: catalogue, metrics: metrics.users)
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
        let state = servingState(version, users: users, observed: observed, catalogue: catalogue, metrics: metrics)
        let last = try state.replay(log: stores.log, after: snapshot.seq, through: through, skipping: snapshot)
        return (state, max(last, snapshot.seq))
    }

    /// The state of a version a retrain just stored, from its users' weights as they were
    /// written (``Stores/storeVersion(_:reflecting:trainingRatings:serve:stored:each:)``):
    /// compact rows (`cold`, tiered) or full states (`hot`, untiered). It reflects the log up to
    /// what they reflect; the install replays the rest. `baselineAtMost` holds it to the best
    /// baseline the model has met. O(users · d), or O(users · d²) untiered.
    /// - Throws: ``StorageError`` when a first load cannot read the item catalogue.
    func load(trained version: ModelVersion, cold: [StoredWeights], hot: [(uid: String, weights: UserWeights)],
              baselineAtMost: Double?, continuing: Continuing) throws -> ServingState {
        let observed = continuing.observed ?? ObservedItems.stored(in: stores, model: version.model)
        let catalogue = try continuing.catalogue ?? ItemCatalogue.stored(in: stores, model: version.model)
        let metrics = continuing.metrics.forState()
        let users = userStore(for: version, observed: observed, catalogue: catalogue, metrics: metrics.users)
        users.reserve(users: cold.count + hot.count)
        for row in cold { users.insertCold(row) }
        for (uid, w) in hot { users.insertHot(uid, w) }
        return servingState(version, users: users, observed: observed, catalogue: catalogue, metrics: metrics,
                            baselineAtMost: baselineAtMost)
    }

    private func userStore(for version: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue,
                           metrics: UserMetrics) -> UserWeightStore {
        UserWeightStore(stride: version.features.stride, hotUsers: configuration.hotUsers,
                        rebuild: rebuilder(version, observed: observed, catalogue: catalogue), metrics: metrics)
    }

    private func servingState(_ version: ModelVersion, users: UserWeightStore, observed: ObservedItems, catalogue: ItemCatalogue,
                              metrics: ModelMetrics.StateMetrics, baselineAtMost: Double? = nil) -> ServingState {
        ServingState(
            version: version, users: users, observed: observed, catalogue: catalogue, monitor: configuration.monitor,
            baselineAtMost: baselineAtMost,
            predictions: PredictionCache(configuration: configuration.predictionCache, metrics: metrics.predictions),
            features: configuration.featureCache, featureMetrics: metrics.features,
            computedFeatures: configuration.computedFeatureCache, computedMetrics: metrics.computed)
    }

    /// How a cold user of version `v` is rebuilt: its full snapshot row (a point read); after a
    /// failed rebuild, also the user's log entries in the range asked for (those after the row),
    /// applied as ``ServingState/apply(_:to:version:validation:)`` applies them live and recorded
    /// in `observed`. O(d²), plus the replay.
    private func rebuilder(_ v: ModelVersion, observed: ObservedItems, catalogue: ItemCatalogue) -> UserWeightStore.Rebuild {
        let stores = stores, validation = configuration.monitor
        let features = ServingFeatures(uncached: v, catalogue: catalogue)
        return { uid, replay in
            guard let stored = try stores.snapshots.loadUserState(model: v.model, version: v.number, uid: uid, dimension: v.dimension) else {
                throw StorageError(.notFound, "user \(uid) of \(v.model) v\(v.number) has no stored state to rebuild from")
            }
            var w = stored.weights
            if let replay, replay.upperBound > stored.seq + 1 {
                try stores.log.forEachObservation(model: v.model, uid: uid, in: max(replay.lowerBound, stored.seq + 1)..<replay.upperBound) { logged in
                    _ = ServingState.apply(logged, to: &w, features: features, validation: validation)
                    observed.insert(uid: uid, item: logged.observation.item)
                }
            }
            return w
        }
    }
}
