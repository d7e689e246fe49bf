import OspreyModel

/// Snapshots of each version's user weights and items' online states, the items users observed
/// (for `exclude_observed`) and the users a process held hot (for the warm start).
///
/// Ordering: each user row carries the log sequence it reflects, and each version has a
/// snapshot sequence every row has reached (``advanceSnapshot(model:version:to:)`` only raises
/// it). A snapshot may be written in several transactions; cut short by a crash, what was
/// written is still exact for the rows it holds, because a restore replays the log after each
/// row's own sequence (see ``UserSnapshot``). Writes are durable when they return.
///
/// Kept copies: a snapshot whose rows must restore as one consistent cut (users and items
/// learned together) writes with `keepingPrevious: true`. Then, in the same transaction as each
/// write, the store keeps the row's previous content, per (model, version, user or item): only
/// the first time (what the row held before the snapshot), and a marker "absent" for a row that
/// did not exist. ``restoreInterruptedSnapshot(model:version:)`` puts them back after a snapshot
/// cut short; ``advanceSnapshot(model:version:to:)`` ends the snapshot and drops them. Neither
/// the snapshot sequence nor the items users observed (which record logged observations, and
/// only grow) are kept or restored. A version's kept copies go with it (``replaceUsers(model:version:reflecting:_:)``,
/// ``deleteVersion(model:version:limit:)``), a user's with its erasure.
public protocol SnapshotStore: Sendable {
    /// Writes a new version's initial user weights as its first snapshot at log sequence `seq`,
    /// replacing anything left by an earlier failed attempt (users, item states and kept copies
    /// are deleted first). `rows` calls its argument with each chunk of rows, each written in its
    /// own transaction (so no more than a chunk is held); item states saved from inside `rows`
    /// are written before the sequence too. The version's snapshot sequence is written last, so a
    /// version whose sequence exists has all its users.
    func replaceUsers(model: String, version: Int, reflecting seq: Int64,
                      _ rows: (_ write: ([SnapshotRow]) throws -> Void) throws -> Void) throws

    /// Saves users' weights, each row with the log sequence it reflects, and items users
    /// observed, in one transaction. With `keepingPrevious`, each user's previous row (full state
    /// and compact twin) is kept first, in the same transaction, unless a copy is already kept
    /// (see "Kept copies" above). O(rows · (d² + log n)).
    /// - Throws: the store's error when the write fails; then nothing was written.
    func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem], keepingPrevious: Bool) throws

    /// Writes (or replaces) items' online states, each with the log sequence it reflects, in one
    /// durable transaction. With `keepingPrevious`, each item's previous state is kept first, in
    /// the same transaction, unless a copy is already kept (see "Kept copies" above).
    /// O(rows · (d² + log n)).
    /// - Throws: the store's error when the write fails; then nothing was written.
    func saveItemStates(model: String, version: Int, rows: [ItemStateRow], keepingPrevious: Bool) throws

    /// Calls `body` with every stored item state of the version, ordered by item id (byte
    /// order), one at a time: a start reads a catalogue's states without holding them all.
    /// O(items · d²).
    /// - Throws: ``StorageError`` `.corrupt` naming the first row (model, version, item) whose
    ///   state is unreadable or not of the version's `dimension`; what `body` throws.
    func forEachItemState(model: String, version: Int, dimension: Int, _ body: (StoredItemState) throws -> Void) throws

    /// Item `item`'s stored state in the version, or nil when it has none: a cold item's state,
    /// read when it next learns (docs/architecture.md, "Items learn online"). O(d² + log n).
    /// - Throws: ``StorageError`` `.corrupt` when the state is unreadable or not of `dimension`.
    func loadItemState(model: String, version: Int, item: String, dimension: Int) throws -> StoredItemState?

    /// Undoes a snapshot cut short, in one durable transaction: every row of the version with a
    /// kept copy gets it back (a row kept as absent is deleted: a user from both user tables, an
    /// item from the item states), and the kept copies are deleted. Returns the rows put back or
    /// deleted (a user's state and its twin counted once); 0 when nothing is kept.
    /// O(kept rows · (d² + log n)).
    /// - Throws: the store's error when the write fails; then nothing changed.
    func restoreInterruptedSnapshot(model: String, version: Int) throws -> Int

    /// Records items users observed, in one transaction; ones already recorded are ignored.
    func saveObservedItems(model: String, _ items: [ObservedItem]) throws

    /// The items user `uid` observed as recorded so far (without repeats). O(log n + rows).
    func observedItems(model: String, uid: String) throws -> [String]

    /// Records that every stored user of the version reflects the log up to `seq` (rows may be
    /// further ahead). Never lowers the sequence. The snapshot is complete: the version's kept
    /// copies are deleted in the same transaction, even when the sequence does not move.
    func advanceSnapshot(model: String, version: Int, to seq: Int64) throws

    /// The latest snapshot of a version's user weights, with every full state; each must have the
    /// version's `dimension`.
    /// - Throws: ``StorageError`` `.notFound` when the version has no stored users, `.corrupt`
    ///   naming the first row (model, version, uid) that is unreadable or of another dimension.
    func loadSnapshot(model: String, version: Int, dimension: Int) throws -> UserSnapshot

    /// The sequence every stored user of the version has reached (see ``UserSnapshot``).
    /// - Throws: ``StorageError`` `.notFound` when the version has no stored users.
    func snapshotSequence(model: String, version: Int) throws -> Int64

    /// Calls `body` with every stored user's compact row (`w_u` and the small fields, no ridge
    /// statistics): what a start loads. O(users · d).
    /// - Throws: ``StorageError`` `.corrupt` naming a row whose weights are not `dimension` floats.
    func forEachStoredWeights(model: String, version: Int, dimension: Int, _ body: (StoredWeights) throws -> Void) throws

    /// One user's full stored state and the log sequence it reflects, or nil when the version
    /// stores none for the user. O(d²) and one point read: this runs on every hot-tier miss.
    /// - Throws: ``StorageError`` `.corrupt` naming the row when the stored state is unreadable
    ///   or not of the version's `dimension`.
    func loadUserState(model: String, version: Int, uid: String, dimension: Int) throws -> (weights: UserWeights, seq: Int64)?

    /// The number of users with stored weights in a version.
    func userCount(model: String, version: Int) throws -> Int

    /// Records the users whose full state a serving process holds in memory (its hot tier),
    /// replacing the version's previous record. O(users · log users).
    func saveHotUsers(model: String, version: Int, _ uids: [String]) throws

    /// The users last recorded by ``saveHotUsers(model:version:_:)`` (none if never). O(users).
    func hotUsers(model: String, version: Int) throws -> [String]

    /// Deletes at most `limit` rows of version `version`'s stored state — user weights, item
    /// states, kept copies, hot users — in one durable transaction, and returns how many it
    /// deleted; once none is left, the version's snapshot sequence goes, and then 0 is returned.
    /// Called until it returns 0, it deletes the whole version in transactions of bounded size,
    /// so that no other write waits long behind it. O(limit · log n).
    /// - Throws: the store's error when the write fails; then nothing of this call was deleted.
    func deleteVersion(model: String, version: Int, limit: Int) throws -> Int

    /// The versions of `model` with anything stored here (rows or a snapshot sequence),
    /// ascending. O(versions · log n).
    func storedVersions(model: String) throws -> [Int]

    /// Erases user `uid` from every version of `model` (a user's erasure, docs/operations.md
    /// "Erasing a user"): its states (`user_ridge` and its compact twin `user_weights`), the
    /// items it observed and its hot-user records, in one durable transaction; its kept copies go
    /// too, so no restore brings it back. Returns the rows erased, counting a state and its twin
    /// once (kept copies not counted). The versions' snapshot sequences stay: a
    /// restore then starts the user afresh from the log after them. Idempotent: a second call
    /// erases 0. O(log n + the user's rows) per table, and O(the model's kept copies).
    /// - Throws: ``StorageError`` `.io` when the write fails; then nothing was erased.
    func deleteUser(model: String, uid: String) throws -> Int
}

extension SnapshotStore {
    /// Every stored item state of the version, ordered by item id (byte order); empty when none
    /// (``forEachItemState(model:version:dimension:_:)``, gathered). O(items · d²).
    public func loadItemStates(model: String, version: Int, dimension: Int) throws -> [StoredItemState] {
        var states: [StoredItemState] = []
        try forEachItemState(model: model, version: version, dimension: dimension) { states.append($0) }
        return states
    }

    /// Saves users' weights, each row with the log sequence it reflects, in one transaction,
    /// keeping no previous rows.
    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow]) throws {
        try saveSnapshot(model: model, version: version, rows: rows, observedItems: [], keepingPrevious: false)
    }

    /// Saves users' weights and items users observed in one transaction, keeping no previous rows.
    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem]) throws {
        try saveSnapshot(model: model, version: version, rows: rows, observedItems: observedItems, keepingPrevious: false)
    }
}
