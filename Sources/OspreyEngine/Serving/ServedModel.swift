import OspreyModel
import OspreyStorage
import Synchronization

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
    /// The model's metrics, carried on by each serving state that replaces the first.
    let metrics: ModelMetrics
    /// Users erased so far (``Manager/eraseUser(model:uid:)``), counted when an erasure has
    /// finished. A retrain reads it before it gathers, and again before it stores its version.
    let erasures = Atomic<Int>(0)
    /// Held by an erasure, and by a retrain from its second read of ``erasures`` until its
    /// version serves: no version trained on a user's data is stored or served after the user's
    /// erasure (docs/operations.md, "Erasing a user"). Taken before the snapshot-writes lock.
    let erasing = Mutex<Void>(())
    /// Loads and installs under way that will replace the serving state (``replacing(when:_:)``).
    private let replacements = Atomic<Int>(0)

    /// - Parameter metrics: the instruments `state` was loaded with; they count on from
    ///   `observations` and `decisions`.
    init(state: ServingState, observations: Int, exploration: ExplorationPolicy = .greedy, decisions: Int = 0,
         metrics: ModelMetrics) {
        name = state.version.model
        self.metrics = metrics
        serving = Mutex(state)
        observationCount = Atomic(observations)
        policy = Mutex(exploration)
        decisionCount = Atomic(decisions)
        metrics.observations.increment(by: observations)
        metrics.decisions.increment(by: decisions)
        state.setLive(true)
        metrics.record(serving: state)
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

    /// Runs `body`, which loads a version and, when `replaces`, installs it in place of the
    /// serving state (a retrain's, a rollback's; not a challenger's). Meanwhile a snapshot at one
    /// cut of the serving state does not start, and one under way stops at its next chunk,
    /// unless twice the snapshot interval is pending: the swap usually lets it go unfinished, and
    /// its writes slow the install down (docs/architecture.md, "Snapshots at one cut"). O(1)
    /// beside `body`.
    func replacing<R>(when replaces: Bool = true, _ body: () throws -> R) rethrows -> R {
        guard replaces else { return try body() }
        beginReplacing()
        defer { endReplacing() }
        return try body()
    }

    /// The two halves of ``replacing(when:_:)``, for a test that holds a replacement across
    /// suspension points.
    func beginReplacing() { replacements.add(1, ordering: .relaxed) }
    func endReplacing() { replacements.subtract(1, ordering: .relaxed) }

    /// Whether a load and install that will replace the serving state is under way. O(1).
    var isBeingReplaced: Bool { replacements.load(ordering: .relaxed) > 0 }

    /// What the model serves now. Readers keep what they got even if a swap follows. O(1).
    public var current: ServingState { serving.withLock { $0 } }

    /// The version serving now (the champion, during a competition). O(1).
    public var version: ModelVersion { current.version }

    /// The running competition between the serving version and a challenger, if any. O(1).
    /// Setting it removes the metrics of the competition it replaces.
    public var competition: Competition? {
        get { contest.withLock { $0 } }
        set {
            let ended = contest.withLock { c in
                defer { c = newValue }
                return c
            }
            if let ended, ended !== newValue { ended.metrics.destroy() }
        }
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

    /// Records the serving state's quality monitor in the model's metrics (after a learned batch).
    func recordQuality() {
        metrics.record(quality: current.quality)
    }

    /// The number of observations of this model in the log.
    public var observations: Int { observationCount.load(ordering: .relaxed) }

    /// Serves `state` from now on, and records what it serves in the model's metrics. Returns the
    /// state it replaced: a caller under the learning lock keeps it until it has let go of the
    /// lock, so that freeing it (every user's state, at scale a gigabyte) holds up no one.
    @discardableResult
    func swap(to state: ServingState) -> ServingState {
        let replaced = serving.withLock { current in
            defer { current = state }
            return current
        }
        if replaced !== state { replaced.setLive(false) }
        state.setLive(true)
        metrics.record(serving: state)
        return replaced
    }

    /// Counts a top-k decision logged, made by `version`.
    func countDecision(version: Int) {
        decisionCount.add(1, ordering: .relaxed)
        metrics.decisions.increment()
        competition?.countDecision(version: version)
    }

    /// Counts feedback joined to logged decisions: `rewards` by the version that decided. Credits
    /// each reward to its version when a competition runs.
    func countFeedback(_ rewards: [(version: Int, label: Float)]) {
        guard !rewards.isEmpty else { return }
        feedbackCount.add(rewards.count, ordering: .relaxed)
        metrics.feedback.increment(by: rewards.count)
        guard let competition else { return }
        for r in rewards { competition.record(version: r.version, reward: Double(r.label)) }
        competition.recordShare(champion: version.number)
    }

    /// Learns a live observation into the current state and a challenger's, each whatever the
    /// other does, and counts it. Returns true when it made the serving version stale. O(d²).
    /// - Throws: when the user was cold in either state and its stored state could not be read.
    func learn(_ logged: LoggedObservation) throws -> Bool {
        observationCount.add(1, ordering: .relaxed)
        metrics.observations.increment()
        // Each state learns even when the other could not (a cold user's failed rebuild): the one
        // that failed replays the observation at the user's next rebuild; the other must not
        // miss it for good.
        var stale = false, failure: (any Error)?
        do { stale = try current.learn(logged) } catch { failure = error }
        do { try competition?.challenger.learn(logged) } catch { failure = failure ?? error }
        if let failure { throw failure }
        return stale
    }
}
