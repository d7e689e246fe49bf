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
    /// configured; see ``FeatureCache``). Counts into the model's statistics, shared by its
    /// versions.
    public let featureCache: FeatureCache<MaterializedFeatures>?
    /// Which observations are the validation sample.
    let validation: QualityMonitor.Configuration

    /// - Parameters:
    ///   - baselineAtMost: a baseline met before (by the version this one replaces); the
    ///     monitor's baseline is the lower of it and this version's validation loss.
    ///   - features: this state's feature cache, counting into `featureStatistics`.
    init(version: ModelVersion, users: UserWeightStore, observed: ObservedItems = ObservedItems(),
         monitor: QualityMonitor.Configuration = .init(), baselineAtMost: Double? = nil,
         predictions: PredictionCache = PredictionCache(),
         features: FeatureCacheConfiguration = .init(), featureStatistics: CacheStatistics = .init()) {
        self.version = version
        self.users = users
        self.observed = observed
        self.predictions = predictions
        featureCache = features.capacity > 0
            ? FeatureCache(version.features, capacity: features.capacity, policy: features.policy, statistics: featureStatistics)
            : nil
        validation = monitor
        let own = version.metadata.validationRMSE.map { $0 * $0 }
        let baseline = [own, baselineAtMost].compactMap { $0 }.min()
        self.monitor = Mutex(QualityMonitor(configuration: monitor, baseline: baseline))
    }

    /// The rows of this version's catalogue that `uid` has rated or observed, each once, in no
    /// particular order.
    /// - Throws: what the store's read throws.
    public func observedRows(of uid: String) throws -> [Int] {
        let catalog = version.features.catalog
        return try observed.items(of: uid).compactMap { catalog.row(of: $0) }
    }

    /// `offset_i + w · f_i` for catalogue row `item`, through the feature cache when there is
    /// one. O(d) on a hit or without a cache.
    func score(weights: UnsafePointer<Float>, item: Int) -> Float {
        if let featureCache { return featureCache.score(weights: weights, item: item) }
        return version.features.score(weights: weights, item: item)
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
        let o = logged.observation
        let v = version
        let outcome = try users.update(o.uid, before: logged.seq, create: {
            UserWeights(ridge: .init(prior: v.prior, lambda: v.lambda), bootstrapped: true)
        }) { w in
            Self.apply(logged, to: &w, version: v, validation: validation)
        }
        observed.insert(uid: o.uid, item: o.item)
        guard let outcome else { return false }
        return monitor.withLock { m in
            if outcome.heldOut {
                m.recordValidation(outcome.loss)
                return false
            }
            let stale = m.record(outcome.loss)
            return o.answersExploration ? m.recordExploration(outcome.loss) || stale : stale
        }
    }

    /// Applies one logged observation to a user's state: counted only for an unknown item,
    /// scored for the validation sample, learned otherwise. Returns its squared prequential error
    /// and whether it was held out (nil for an unknown item). O(d²).
    static func apply(_ logged: LoggedObservation, to w: inout UserWeights, version v: ModelVersion,
                      validation: QualityMonitor.Configuration) -> (loss: Double, heldOut: Bool)? {
        let o = logged.observation
        guard let row = v.features.catalog.row(of: o.item) else {
            w.countWithoutLearning()
            return nil
        }
        let heldOut = validation.holdsOut(seq: logged.seq)
        return v.features.withFeatures(item: row) { f, offset in
            if heldOut { return (w.countHeldOut(features: f, target: o.label - offset), true) }
            return (w.learn(features: f, target: o.label - offset), false)
        }
    }

    /// How a cold user of version `v` is rebuilt: its full snapshot row (a point read); after a
    /// failed rebuild, also the user's log entries in the range asked for (those after the row),
    /// applied as ``apply(_:to:version:validation:)`` applies them live and recorded in
    /// `observed`. O(d²), plus the replay.
    static func rebuilder(stores: Stores, version v: ModelVersion, validation: QualityMonitor.Configuration,
                          observed: ObservedItems) -> UserWeightStore.Rebuild {
        { uid, replay in
            guard let stored = try stores.snapshots.loadUserState(model: v.model, version: v.number, uid: uid) else {
                throw StorageError(.notFound, "user \(uid) of \(v.model) v\(v.number) has no stored state to rebuild from")
            }
            var w = stored.weights
            if let replay, replay.upperBound > stored.seq + 1 {
                try stores.log.forEachObservation(model: v.model, uid: uid, in: max(replay.lowerBound, stored.seq + 1)..<replay.upperBound) { logged in
                    _ = apply(logged, to: &w, version: v, validation: validation)
                    observed.insert(uid: uid, item: logged.observation.item)
                }
            }
            return w
        }
    }

    /// Restores the state of version `number` of `model` from the store, then learns the log
    /// after the snapshot up to `through` in log order exactly as it was live. Tiered
    /// (`hotUsers` < `Int.max`), it loads only every user's compact row (`w_u` and the small
    /// fields; cold) — the full states are read on a miss; untiered, every user's full state.
    /// `observed` is the model's record of rated items (a new one from the store when nil).
    /// With `warmStart` (tiered only), the users hot at the version's last snapshot are named
    /// for ``UserWeightStore/warmStartList``.
    /// Returns the state and the last sequence replayed.
    static func restore(model: String, version number: Int, stores: Stores, through: Int64 = .max,
                        monitor: QualityMonitor.Configuration = .init(),
                        predictions: PredictionCache = PredictionCache(),
                        features: FeatureCacheConfiguration = .init(), featureStatistics: CacheStatistics = .init(),
                        hotUsers: Int = .max, statistics: UserWeightStore.Statistics = .init(),
                        observed: ObservedItems? = nil, warmStart: Bool = false) throws -> (ServingState, Int64) {
        let version = try stores.versions.loadVersion(model: model, number: number)
        let observed = observed ?? ObservedItems.stored(in: stores, model: model)
        let users = UserWeightStore(
            stride: version.features.stride, hotUsers: hotUsers,
            rebuild: rebuilder(stores: stores, version: version, validation: monitor, observed: observed), statistics: statistics)
        let snapshot: UserSnapshot
        if users.hotUsers == .max {
            var full = try stores.snapshots.loadSnapshot(model: model, version: number)
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
        let state = ServingState(version: version, users: users, observed: observed, monitor: monitor, predictions: predictions,
                                 features: features, featureStatistics: featureStatistics)
        let last = try state.replay(stores: stores, after: snapshot.seq, through: through, skipping: snapshot)
        return (state, max(last, snapshot.seq))
    }

    /// Learns the model's logged observations with sequence in (`after`, `through`], skipping
    /// what `snapshot` says a user's stored state already reflects. Returns the last sequence seen.
    @discardableResult
    func replay(stores: Stores, after: Int64, through: Int64 = .max, skipping snapshot: UserSnapshot? = nil) throws -> Int64 {
        var last = after
        // Pages of the log, so no read stays open while a cold user's rebuild reads the store.
        while last < through {
            let page = try stores.log.observations(model: version.model, after: last, limit: 10_000)
            for logged in page {
                guard logged.seq <= through else { return last }
                last = logged.seq
                if let snapshot, snapshot.reflects(uid: logged.observation.uid, seq: logged.seq) { continue }
                try learn(logged)
            }
            if page.count < 10_000 { break }
        }
        return last
    }
}

/// A model as the engine serves it: its current ``ServingState``, swapped atomically.
public final class ServedModel: Sendable {
    public let name: String
    private let serving: Mutex<ServingState>
    /// Observations of this model in the log.
    let observationCount: Atomic<Int>
    private let policy: Mutex<ExplorationPolicy>
    private let contest = Mutex<Competition?>(nil)
    /// Top-k decisions logged (all time), and observations that named one (since the process started).
    let decisionCount: Atomic<Int>, feedbackCount = Atomic<Int>(0)
    /// The feature caches' counts, continued by each serving state that replaces the first.
    let featureStatistics: CacheStatistics

    init(state: ServingState, observations: Int, exploration: ExplorationPolicy = .greedy, decisions: Int = 0) {
        name = state.version.model
        featureStatistics = state.featureCache?.statistics ?? CacheStatistics()
        serving = Mutex(state)
        observationCount = Atomic(observations)
        policy = Mutex(exploration)
        decisionCount = Atomic(decisions)
    }

    /// The model's exploration policy: how its top-k answers explore. O(1).
    public var exploration: ExplorationPolicy {
        get { policy.withLock { $0 } }
        set { policy.withLock { $0 = newValue } }
    }

    /// Top-k decisions logged: the store's count when the process started (pruning leaves it)
    /// plus those since. O(1).
    public var decisions: Int { decisionCount.load(ordering: .relaxed) }
    /// Observations naming a logged decision since the process started.
    public var feedback: Int { feedbackCount.load(ordering: .relaxed) }

    /// What the model serves now. Readers keep what they got even if a swap follows. O(1).
    public var current: ServingState { serving.withLock { $0 } }

    /// The version serving now (the champion, during a competition). O(1).
    public var version: ModelVersion { current.version }

    /// The running competition between the serving version and a challenger, if any. O(1).
    public var competition: Competition? {
        get { contest.withLock { $0 } }
        set { contest.withLock { $0 = newValue } }
    }

    /// The state that serves user `uid`: the serving one, or during a competition the version
    /// the user is allocated to. O(1).
    public func state(for uid: String) -> ServingState {
        let champion = current
        guard let competition else { return champion }
        let v = competition.version(for: uid, champion: champion.version.number)
        return v == champion.version.number ? champion : competition.challenger
    }

    /// Every state learning live: the serving one and a challenger's.
    var learningStates: [ServingState] {
        let champion = current
        guard let competition else { return [champion] }
        return [champion, competition.challenger]
    }

    /// The number of observations of this model in the log.
    public var observations: Int { observationCount.load(ordering: .relaxed) }

    /// Serves `state` from now on.
    func swap(to state: ServingState) {
        serving.withLock { $0 = state }
    }

    /// Learns a live observation into the current state (and a challenger's) and counts it.
    /// Returns true when it made the serving version stale. O(d²).
    /// - Throws: when the user was cold and its stored state could not be read.
    func learn(_ logged: LoggedObservation) throws -> Bool {
        observationCount.add(1, ordering: .relaxed)
        let stale = try current.learn(logged)
        try competition?.challenger.learn(logged)
        return stale
    }
}
