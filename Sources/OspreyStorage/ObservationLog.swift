import OspreyModel

/// The append-only, durable record of all observations: the source of truth that user weights
/// are a view of and that retraining reads (docs/architecture.md, storage semantics).
///
/// Ordering: every appended observation gets a sequence number, unique across models and
/// strictly increasing in the order of the commits; within one ``append(_:)`` the numbers follow
/// the array. A reader sees a commit whole or not at all. Sequence numbers are never reused, so
/// "the log after seq" names the same observations for every reader, on every restart.
///
/// Durability: when ``append(_:)`` returns, the observations survive a process kill and a power
/// loss (the SQLite log commits with `synchronous = FULL`). When it throws, none of them were
/// logged. Callers batch concurrent writers into one append (group commit).
///
/// Idempotency: an observation with an ``Observation/observationId`` that the model's log already
/// holds — or that an earlier observation of the same append carries — is not appended. The ids
/// are kept with their observations, so a retry is recognized for as long as the first is in the
/// log (forever, unless its user is erased), across restarts.
public protocol ObservationLog: Sendable {
    /// Appends observations in one durable commit and returns their sequence numbers, in order;
    /// nil for an observation not appended because its observation id is already logged.
    /// - Throws: ``StorageError`` `.io` when the commit fails; then nothing was appended.
    func append(_ observations: [Observation]) throws -> [Int64?]

    /// ``append(_:)`` for a cluster node: only while node `fence.node` holds every bucket of
    /// `fence.buckets` (``claimBuckets(_:node:)``), checked in the commit itself, so that a
    /// bucket's new owner, which claims it before it adopts the bucket's users, either finds the
    /// append in the log or the append fails (docs/operations.md, "Partitioned serving").
    /// - Throws: ``StorageError`` `.conflict` when the node no longer holds a bucket, `.io` when
    ///   the commit fails; either way nothing was appended.
    func append(_ observations: [Observation], fence: AppendFence) throws -> [Int64?]

    /// Records node `node` as holding `buckets` for ``append(_:fence:)``, once every fenced append
    /// of their previous holders in progress has committed or failed.
    /// - Throws: ``StorageError`` `.io` when the store cannot be written; then nothing changed.
    func claimBuckets(_ buckets: [Int], node: String) throws

    /// At most `limit` of the model's observations with sequence above `seq`, in sequence order:
    /// a replay reads the log in such pages, so it holds no read open while it learns.
    /// O(limit + log n).
    func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation]

    /// Calls `body` for each of `model`'s observations with a sequence number above `seq`, in
    /// sequence order, from one consistent read.
    func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws

    /// Calls `body` with user `uid`'s observations of `model` with sequence in `range`, in order:
    /// what rebuilding a cold user whose earlier rebuild failed replays. The log need not be
    /// indexed by user, so this may read every observation of the model in the range.
    func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                            _ body: (LoggedObservation) throws -> Void) throws

    /// The first observation carrying each event id, for the model's observations with one: the
    /// feedback joined to logged decisions.
    func feedback(model: String) throws -> [String: DecisionFeedback]

    /// The number of `model`'s observations in the log.
    func observationCount(model: String) throws -> Int

    /// The highest sequence number in the log (0 when empty).
    func lastSequence() throws -> Int64

    /// Erases user `uid`'s observations of `model` with sequence at most `seq` (a user's
    /// erasure, docs/operations.md "Erasing a user") in one durable commit, and returns how many
    /// it erased. The only change the log ever sees besides appends: sequence numbers are still
    /// never reused (``lastSequence()`` does not go down), and a reader sees the log with all of
    /// them or none. Idempotent: a second call erases 0. O(the model's observations): the log
    /// has no index by user.
    /// - Throws: ``StorageError`` `.io` when the commit fails; then nothing was erased.
    func deleteUser(model: String, uid: String, through seq: Int64) throws -> Int
}

/// The partition buckets a cluster node must hold for its append to commit
/// (``ObservationLog/append(_:fence:)``).
public struct AppendFence: Sendable, Equatable {
    public var node: String
    /// Distinct buckets of the appended observations' users.
    public var buckets: [Int]

    public init(node: String, buckets: [Int]) {
        self.node = node
        self.buckets = buckets
    }
}
