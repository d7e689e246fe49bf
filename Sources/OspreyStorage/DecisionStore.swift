/// The decision log: top-k answers with their propensities, kept for feedback joins and
/// off-policy evaluation, and the users' allocations in competitions.
///
/// Ordering: decisions are kept in the order they were appended, which is the order of their
/// timestamps (one writer takes them just before it appends), and only the oldest are ever
/// deleted. A repeated event id is ignored. Each model's count of decisions ever logged is kept
/// by the appends in the same transaction, and pruning leaves it.
public protocol DecisionStore: Sendable {
    /// Appends decisions in one transaction and adds those appended to their models' counts.
    /// With `trimBefore` or `trimKeep`, the same transaction then deletes up to twice as many of
    /// the oldest decisions as it appended that those limits no longer keep. Returns how many it
    /// deleted.
    @discardableResult
    func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double?, trimKeep: Int?) throws -> Int

    /// Deletes the oldest decisions: every one logged before `before` (seconds since 1970), and
    /// beyond that all but the newest `keep`, `batch` per transaction and at most `maxBatches`
    /// transactions. Returns how many were deleted. O(deleted + batch).
    func pruneDecisions(before: Double?, keep: Int?, batch: Int, maxBatches: Int) throws -> Int

    /// The decision logged under `eventId`, or nil. O(log n).
    func decision(eventId: String) throws -> DecisionRecord?

    /// The model's latest `limit` decisions, oldest first.
    func decisions(model: String, limit: Int) throws -> [DecisionRecord]

    /// The number of decisions ever logged for the model: pruning the oldest leaves it.
    func decisionCount(model: String) throws -> Int

    /// The version behind each of the model's decisions logged at or after `since`.
    func decisionVersions(model: String, since: Double) throws -> [String: Int]

    /// Records user assignments (a repeated one is ignored: the first allocation stands).
    func appendAssignments(_ assignments: [Assignment]) throws

    /// The users allocated in the model's competition started at `since`, with their versions.
    func assignments(model: String, since: Double) throws -> [String: Int]

    /// Erases user `uid`'s decisions of `model` and its allocations in the model's competitions
    /// (a user's erasure, docs/operations.md "Erasing a user"), in one transaction; returns the
    /// rows erased (decisions and allocations). The only deletion besides the oldest: the log
    /// keeps its order with gaps in it, and the model's count of decisions ever logged stays.
    /// Idempotent: a second call erases 0. O(n) in the decisions (no index by user).
    /// - Throws: ``StorageError`` `.io` when the write fails; then nothing was erased.
    func deleteUser(model: String, uid: String) throws -> Int
}

extension DecisionStore {
    /// Appends decisions in one transaction, trimming nothing.
    @discardableResult
    public func appendDecisions(_ decisions: [DecisionRecord]) throws -> Int {
        try appendDecisions(decisions, trimBefore: nil, trimKeep: nil)
    }

    /// Deletes the oldest decisions that `before` and `keep` no longer keep, 10,000 per
    /// transaction.
    public func pruneDecisions(before: Double?, keep: Int?) throws -> Int {
        try pruneDecisions(before: before, keep: keep, batch: 10_000, maxBatches: .max)
    }
}
