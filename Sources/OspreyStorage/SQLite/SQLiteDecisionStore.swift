import Foundation
import GRDB
import GRDBSQLite
import OspreyModel

/// The decision log in `decisions.sqlite` (its own file, so its batched writes never hold up an
/// observation's commit): table `decision` (rowids follow the log's order), `decision_count`
/// (each model's decisions ever logged) and `assignment` (competition allocations).
///
/// A decision's lists are stored compactly, each a blob (``DecisionLists``): a list holding only
/// its default (as in a greedy answer) is an empty one.
public final class SQLiteDecisionStore: DecisionStore, Sendable {
    /// The decision database file inside a data directory.
    public static let fileName = "decisions.sqlite"
    /// The database the decisions are in.
    public let database: SQLiteDatabase
    private var pool: DatabasePool { database.pool }

    /// Opens the decision database at `path`; `lock` is held while the store is open.
    init(path: String, lock: DataDirectoryLock?, readOnly: Bool = false) throws {
        database = try SQLiteDatabase(path: path, migrator: Self.migrator, lock: lock, readOnly: readOnly)
    }

    /// Appends decisions in one transaction, and adds those appended to their models' counts
    /// (``decisionCount(model:)``). Event ids are unique; a repeated one is ignored.
    /// With `trimBefore` or `trimKeep`, the same transaction then deletes the oldest decisions
    /// those limits no longer keep (see ``pruneDecisions(before:keep:batch:maxBatches:)``), up to
    /// twice as many as it appended: a log at its limits stays there at no extra commit, and a
    /// backlog shrinks as fast as the log grows. Returns how many it deleted.
    @discardableResult
    public func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double?, trimKeep: Int?) throws -> Int {
        guard !decisions.isEmpty else { return 0 }
        return try pool.write { db in
            var insert = DecisionInsert(db)
            try insert.insert(decisions)
            guard trimBefore != nil || trimKeep != nil else { return 0 }
            return try Self.pruneOldest(db, before: trimBefore, keep: trimKeep, batch: 2 * decisions.count)
        }
    }

    /// Deletes the oldest decisions: every one logged before `before` (seconds since 1970), and
    /// beyond that all but the newest `keep`. Decisions go in log order, `batch` per transaction
    /// and at most `maxBatches` transactions, so a concurrent append waits for one batch at most.
    /// Freed pages are reused by later decisions (the file stops growing; it does not shrink).
    /// Returns how many were deleted: fewer than `batch · maxBatches` when no more were due.
    /// O(deleted + batch).
    public func pruneDecisions(before: Double?, keep: Int?, batch: Int, maxBatches: Int) throws -> Int {
        precondition(batch > 0 && (keep ?? 0) >= 0 && maxBatches > 0, "prune batch and batches must be positive, keep non-negative")
        var deleted = 0
        for _ in 0..<maxBatches {
            let n = try pool.write { db in try Self.pruneOldest(db, before: before, keep: keep, batch: batch) }
            deleted += n
            if n < batch { break }
        }
        return deleted
    }

    /// Deletes up to `batch` of the oldest decisions that `before` and `keep` no longer keep, in
    /// the caller's transaction; returns how many. O(batch + log n).
    private static func pruneOldest(_ db: Database, before: Double?, keep: Int?, batch: Int) throws -> Int {
        guard let (first, last) = try rowids(db) else { return 0 }
        var cut = first - 1  // delete rowids up to here
        if let keep, last - first + 1 > Int64(keep) {
            cut += min(last - first + 1 - Int64(keep), Int64(batch))
        }
        if let before, cut < first - 1 + Int64(batch) {
            // A cursor, so a log with nothing old enough costs one row read, not a batch of them
            // (each write of decisions runs this).
            let rows = try Row.fetchCursor(db, sql: "SELECT rowid AS r, time FROM decision WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                           arguments: [cut, first - 1 + Int64(batch) - cut])
            while let row = try rows.next() {
                guard (row["time"] as Double) < before else { break }
                cut = row["r"]
            }
        }
        guard cut >= first else { return 0 }
        try db.execute(sql: "DELETE FROM decision WHERE rowid <= ?", arguments: [cut])
        return db.changesCount
    }

    /// The decision logged under `eventId`, or nil. O(log n).
    public func decision(eventId: String) throws -> DecisionRecord? {
        try pool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.decisionColumns) FROM decision WHERE event_id = ?", arguments: [eventId])
                .map(Self.decision)
        }
    }

    /// The model's latest `limit` decisions, oldest first.
    public func decisions(model: String, limit: Int) throws -> [DecisionRecord] {
        try pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM (SELECT \(Self.decisionColumns), rowid AS r FROM decision WHERE model = ? ORDER BY rowid DESC LIMIT ?)
                ORDER BY r
                """, arguments: [model, limit]).map(Self.decision)
        }
    }

    /// The number of decisions ever logged for the model: pruning the oldest leaves it. O(log m)
    /// for m models.
    public func decisionCount(model: String) throws -> Int {
        try pool.read { db in
            try Int.fetchOne(db, sql: "SELECT logged FROM decision_count WHERE model = ?", arguments: [model]) ?? 0
        }
    }

    /// The first and last rowid of the decisions, nil when there are none. Besides prefixes only
    /// a user's erasure deletes, leaving gaps: then a `keep` prune keeps a few fewer than `keep`,
    /// and the binary search below lets the next row stand in for a missing one. O(log n): two queries, as SQLite finds a lone
    /// min() or max() in O(log n) but scans the table for both.
    private static func rowids(_ db: Database) throws -> (first: Int64, last: Int64)? {
        guard let first = try Int64.fetchOne(db, sql: "SELECT min(rowid) FROM decision"),
              let last = try Int64.fetchOne(db, sql: "SELECT max(rowid) FROM decision")
        else { return nil }
        return (first, last)
    }

    /// The first rowid of the decisions logged at or after `time` (seconds since 1970), or the
    /// next rowid to be used when none is: a binary search over the rowids, in O(log n) rows
    /// read. Rowids follow the log order and decisions are logged in time order (one writer,
    /// timestamps taken just before the append), so this holds as long as the clock does not
    /// step back; callers searching from a time allow a margin for that.
    static func firstDecisionRowid(_ db: Database, atOrAfter time: Double) throws -> Int64 {
        guard let (first, last) = try rowids(db) else { return 1 }
        let at = try db.makeStatement(sql: "SELECT time FROM decision WHERE rowid >= ? ORDER BY rowid LIMIT 1")
        var low = first, high = last + 1  // the answer is in [low, high]
        while low < high {
            let mid = low + (high - low) / 2
            // The next row stands in for a missing one (an erasure's gap; see `rowids`).
            let t = try Double.fetchOne(at, arguments: [mid]) ?? .infinity
            if t < time { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Records user assignments (a repeated one is ignored: the first allocation stands).
    public func appendAssignments(_ assignments: [Assignment]) throws {
        guard !assignments.isEmpty else { return }
        try pool.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO assignment (model, since, uid, version) VALUES (?, ?, ?, ?)")
            for a in assignments { try insert.execute(arguments: [a.model, a.since, a.uid, a.version]) }
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        try pool.write { db in
            try db.execute(sql: "DELETE FROM decision WHERE model = ? AND uid = ?", arguments: [model, uid])
            let decisions = db.changesCount
            try db.execute(sql: "DELETE FROM assignment WHERE model = ? AND uid = ?", arguments: [model, uid])
            return decisions + db.changesCount
        }
    }

    /// The users allocated in the model's competition started at `since`, with their versions.
    public func assignments(model: String, since: Double) throws -> [String: Int] {
        try pool.read { db in
            var out: [String: Int] = [:]
            let rows = try Row.fetchCursor(db, sql: "SELECT uid, version FROM assignment WHERE model = ? AND since = ?",
                                           arguments: [model, since])
            while let row = try rows.next() { out[row[0]] = row[1] }
            return out
        }
    }

    /// The version behind each of the model's decisions logged at or after `since`. Reads the
    /// decisions logged from a minute before `since` on (all models'), found by a binary search
    /// over the rowids: O(log n + those decisions). A clock stepped back by more than that minute
    /// while the competition ran hides the decisions logged before the step.
    public func decisionVersions(model: String, since: Double) throws -> [String: Int] {
        try pool.read { db in
            var out: [String: Int] = [:]
            let start = try Self.firstDecisionRowid(db, atOrAfter: since - 60)
            let rows = try Row.fetchCursor(db, sql: "SELECT event_id, version FROM decision WHERE rowid >= ? AND model = ? AND time >= ?",
                                           arguments: [start, model, since])
            while let row = try rows.next() { out[row[0]] = row[1] }
            return out
        }
    }

    private static let decisionColumns =
        "event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored, candidates"

    private static func decision(_ row: Row) -> DecisionRecord {
        let items = DecisionLists.items(ids: row[6], scores: row[7], exploring: row[8], propensities: row[9], explored: row[10])
        let candidates: Data? = row[11]
        return DecisionRecord(eventId: row[0], model: row[1], version: row[2], uid: row[3], policy: row[4], time: row[5],
                              items: items, candidates: candidates.map(DecisionLists.split))
    }
}
