import OspreyModel
import OspreyStorage
import Synchronization

/// What a model serves at one moment: an immutable version, the users' weights learned on top of
/// it, and the items each user has rated. Swapped whole when a retrain or rollback finishes, so a
/// reader always sees the three together.
public final class ServingState: Sendable {
    public let version: ModelVersion
    public let users: UserWeightStore
    public let observed: ObservedItems
    /// Prequential loss of this version's observations, and whether it has gone stale.
    let monitor: Mutex<QualityMonitor>
    /// Answers computed from this state (Velox §5); a new state starts a new cache.
    public let predictions: PredictionCache
    /// Which observations are the validation sample.
    let validation: QualityMonitor.Configuration

    /// - Parameter baselineAtMost: a baseline met before (by the version this one replaces);
    ///   the monitor's baseline is the lower of it and this version's validation loss.
    init(version: ModelVersion, users: UserWeightStore, observed: ObservedItems = ObservedItems(),
         monitor: QualityMonitor.Configuration = .init(), baselineAtMost: Double? = nil,
         predictions: PredictionCache = PredictionCache()) {
        self.version = version
        self.users = users
        self.observed = observed
        self.predictions = predictions
        validation = monitor
        let own = version.metadata.validationRMSE.map { $0 * $0 }
        let baseline = [own, baselineAtMost].compactMap { $0 }.min()
        self.monitor = Mutex(QualityMonitor(configuration: monitor, baseline: baseline))
    }

    /// The quality monitor's state now.
    public var quality: QualityMonitor { monitor.withLock { $0 } }

    /// Learns one logged observation (live and on replay alike, in log order): a user never seen
    /// starts from the version's prior (bootstrapping, Velox §5); an item the version does not
    /// know is counted but cannot move the weights; an observation in the validation sample is
    /// scored into the monitor's validation loss and counted, never learned. Returns true when
    /// this observation made the version stale. An observation answering an exploratory choice is
    /// also scored into the monitor's exploration pool. O(d²).
    @discardableResult
    func learn(_ logged: LoggedObservation) -> Bool {
        let o = logged.observation
        let v = version
        let row = v.features.catalog.row(of: o.item)
        let heldOut = row != nil && validation.holdsOut(seq: logged.seq)
        let loss = users.update(o.uid, create: {
            UserWeights(ridge: .init(prior: v.prior, lambda: v.lambda), bootstrapped: true)
        }) { w -> Double? in
            guard let row else {
                w.countWithoutLearning()
                return nil
            }
            observed.insert(uid: o.uid, row: row)
            return v.features.withFeatures(item: row) { f, offset in
                if heldOut { return w.countHeldOut(features: f, target: o.label - offset) }
                return w.learn(features: f, target: o.label - offset)
            }
        }
        guard let loss else { return false }
        return monitor.withLock { m in
            if heldOut {
                m.recordValidation(loss)
                return false
            }
            let stale = m.record(loss)
            return o.answersExploration ? m.recordExploration(loss) || stale : stale
        }
    }

    /// Restores the state of version `number` of `model` from the store: its user-weight
    /// snapshot, the items users rated, then the log after the snapshot up to `through`, learned
    /// in log order exactly as it was live. Returns the state and the last sequence replayed.
    static func restore(model: String, version number: Int, store: SQLiteStore, through: Int64 = .max,
                        monitor: QualityMonitor.Configuration = .init(),
                        predictions: PredictionCache = PredictionCache()) throws -> (ServingState, Int64) {
        let version = try store.loadVersion(model: model, number: number)
        let snapshot = try store.loadSnapshot(model: model, version: number)
        let state = ServingState(version: version, users: UserWeightStore(users: snapshot.users), monitor: monitor,
                                 predictions: predictions)
        try store.forEachRating(model: model) { uid, item in
            if let row = version.features.catalog.row(of: item) { state.observed.insert(uid: uid, row: row) }
        }
        let last = try state.replay(store: store, after: snapshot.seq, through: through, skipping: snapshot)
        return (state, max(last, snapshot.seq))
    }

    /// Learns the model's logged observations with sequence in (`after`, `through`], skipping
    /// what `snapshot` says a user's stored state already reflects. Returns the last sequence seen.
    @discardableResult
    func replay(store: SQLiteStore, after: Int64, through: Int64 = .max, skipping snapshot: UserSnapshot? = nil) throws -> Int64 {
        var last = after
        try store.forEachObservation(model: version.model, after: after) { logged in
            guard logged.seq <= through else { return }
            last = logged.seq
            if let snapshot, snapshot.reflects(uid: logged.observation.uid, seq: logged.seq) { return }
            learn(logged)
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
    /// Top-k decisions logged, and observations that named one (since the process started).
    let decisionCount = Atomic<Int>(0), feedbackCount = Atomic<Int>(0)

    init(state: ServingState, observations: Int, exploration: ExplorationPolicy = .greedy) {
        name = state.version.model
        serving = Mutex(state)
        observationCount = Atomic(observations)
        policy = Mutex(exploration)
    }

    /// The model's exploration policy: how its top-k answers explore. O(1).
    public var exploration: ExplorationPolicy {
        get { policy.withLock { $0 } }
        set { policy.withLock { $0 = newValue } }
    }

    /// Top-k decisions logged since the process started.
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
    func learn(_ logged: LoggedObservation) -> Bool {
        observationCount.add(1, ordering: .relaxed)
        competition?.challenger.learn(logged)
        return current.learn(logged)
    }
}
