import Foundation
import GRDB
import GRDBSQLite
import OspreyModel

/// The decision log, in `decisions.sqlite` (its own file, so its batched writes never hold up an
/// observation's commit), and the per-model exploration policy in the catalogue.
///
/// A decision's lists are stored compactly: ids as UTF-8 joined by NUL (which ids may not contain), scores
/// and exploring values as Float32 blobs (NaN for none), propensities as Float64 (NaN for none),
/// the explored flags as one byte each. A list holding only its default (no exploring values,
/// propensities of 1, nothing explored: as in a greedy answer) is an empty blob, which saves 130
/// of a greedy top-10 decision's ~330 bytes.
extension SQLiteStore {
    /// Appends decisions in one transaction, and adds those appended to their models' counts
    /// (``decisionCount(model:)``). Event ids are unique; a repeated one is ignored.
    /// With `trimBefore` or `trimKeep`, the same transaction then deletes the oldest decisions
    /// those limits no longer keep (see ``pruneDecisions(before:keep:batch:maxBatches:)``), up to
    /// twice as many as it appended: a log at its limits stays there at no extra commit, and a
    /// backlog shrinks as fast as the log grows. Returns how many it deleted.
    @discardableResult
    public func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double? = nil, trimKeep: Int? = nil) throws -> Int {
        guard !decisions.isEmpty else { return 0 }
        return try decisionPool.write { db in
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
    public func pruneDecisions(before: Double?, keep: Int?, batch: Int = 10_000, maxBatches: Int = .max) throws -> Int {
        precondition(batch > 0 && (keep ?? 0) >= 0 && maxBatches > 0, "prune batch and batches must be positive, keep non-negative")
        var deleted = 0
        for _ in 0..<maxBatches {
            let n = try decisionPool.write { db in try Self.pruneOldest(db, before: before, keep: keep, batch: batch) }
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
        try decisionPool.read { db in
            try Row.fetchOne(db, sql: "SELECT \(Self.decisionColumns) FROM decision WHERE event_id = ?", arguments: [eventId])
                .map(Self.decision)
        }
    }

    /// The model's latest `limit` decisions, oldest first.
    public func decisions(model: String, limit: Int) throws -> [DecisionRecord] {
        try decisionPool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT * FROM (SELECT \(Self.decisionColumns), rowid AS r FROM decision WHERE model = ? ORDER BY rowid DESC LIMIT ?)
                ORDER BY r
                """, arguments: [model, limit]).map(Self.decision)
        }
    }

    /// The number of decisions ever logged for the model: pruning the oldest leaves it. O(log m)
    /// for m models.
    public func decisionCount(model: String) throws -> Int {
        try decisionPool.read { db in
            try Int.fetchOne(db, sql: "SELECT logged FROM decision_count WHERE model = ?", arguments: [model]) ?? 0
        }
    }

    /// The first and last rowid of the decisions, nil when there are none. Only prefixes are ever
    /// deleted, so the rowids between are all there. O(log n): two queries, as SQLite finds a lone
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
            // The next row stands in for a missing one (there are none; see `rowids`).
            let t = try Double.fetchOne(at, arguments: [mid]) ?? .infinity
            if t < time { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The first observation carrying each event id, for the model's observations with one.
    public func feedback(model: String) throws -> [String: DecisionFeedback] {
        try pool.read { db in
            var out: [String: DecisionFeedback] = [:]
            let rows = try Row.fetchCursor(db, sql: """
                SELECT event_id, item, label, seq FROM observation WHERE model = ? AND event_id IS NOT NULL ORDER BY seq
                """, arguments: [model])
            while let row = try rows.next() {
                let id: String = row[0]
                if out[id] == nil { out[id] = DecisionFeedback(item: row[1], label: Float(row[2] as Double), seq: row[3]) }
            }
            return out
        }
    }

    /// Each model's exploration policy, in its API form.
    public func explorationPolicies() throws -> [String: String] {
        try pool.read { db in
            var out: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT name, exploration FROM model") { out[row[0]] = row[1] }
            return out
        }
    }

    /// Sets a model's exploration policy (its API form).
    /// - Throws: ``StorageError`` `.notFound` for an unknown model.
    public func setExplorationPolicy(model: String, policy: String) throws {
        try pool.write { db in
            try db.execute(sql: "UPDATE model SET exploration = ? WHERE name = ?", arguments: [policy, model])
            guard db.changesCount > 0 else { throw StorageError(.notFound, "model \(model) does not exist") }
        }
    }

    private static let decisionColumns =
        "event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored, candidates"

    private static func decision(_ row: Row) -> DecisionRecord {
        let ids = split(row[6])
        let scores = floats(row[7]), exploring = floats(row[8])
        let propensityData: Data = row[9], explored: Data = row[10]
        var propensities = [Double](repeating: .nan, count: propensityData.count / 8)
        propensities.withUnsafeMutableBytes { _ = propensityData.copyBytes(to: $0) }
        // An empty list (other than the ids and scores) holds its default.
        let n = min(ids.count, scores.count, exploring.isEmpty ? .max : exploring.count,
                    propensities.isEmpty ? .max : propensities.count, explored.isEmpty ? .max : explored.count)
        let items = (0..<n).map { i in
            DecisionRecord.Shown(
                item: ids[i], score: scores[i], exploring: exploring.isEmpty || exploring[i].isNaN ? nil : exploring[i],
                propensity: propensities.isEmpty ? 1 : propensities[i].isNaN ? nil : propensities[i],
                explored: !explored.isEmpty && explored[explored.startIndex + i] != 0)
        }
        let candidates: Data? = row[11]
        return DecisionRecord(eventId: row[0], model: row[1], version: row[2], uid: row[3], policy: row[4], time: row[5],
                              items: items, candidates: candidates.map(split))
    }

    private static func split(_ data: Data) -> [String] {
        data.isEmpty ? [] : data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// Inserts decisions through SQLite's C API, binding each column straight from reused buffers:
/// this runs ~20,000 times a second under a top-k load, on the same two cores as the requests,
/// and GRDB's `StatementArguments` (an array of boxed values per row) and a fresh array per list
/// cost more than SQLite's insert itself.
private struct DecisionInsert {
    private let db: Database
    private var ids: [UInt8] = [], scores: [Float] = [], exploring: [Float] = [], propensities: [Double] = [], explored: [UInt8] = []
    private var candidates: [UInt8] = []

    init(_ db: Database) { self.db = db }

    /// Inserts the decisions in the caller's transaction and adds them to their models' counts;
    /// a repeated event id is ignored (and not counted).
    mutating func insert(_ decisions: [DecisionRecord]) throws {
        var statement: OpaquePointer?
        let sql = """
            INSERT OR IGNORE INTO decision (event_id, model, version, uid, policy, time, items, scores, exploring,
                                            propensities, explored, candidates)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """
        let prepared = sqlite3_prepare_v2(db.sqliteConnection, sql, -1, &statement, nil)
        guard prepared == SQLITE_OK else { throw error(prepared) }
        defer { sqlite3_finalize(statement) }
        // How many each model gained, in runs: a batch is mostly one model's.
        var counts: [(model: String, inserted: Int)] = []
        for d in decisions {
            gather(d)
            bindText(statement, 1, d.eventId)
            bindText(statement, 2, d.model)
            sqlite3_bind_int64(statement, 3, Int64(d.version))
            bindText(statement, 4, d.uid)
            bindText(statement, 5, d.policy)
            sqlite3_bind_double(statement, 6, d.time)
            bindBlob(statement, 7, ids)
            bindBlob(statement, 8, scores)
            bindBlob(statement, 9, exploring)
            bindBlob(statement, 10, propensities)
            bindBlob(statement, 11, explored)
            if d.candidates != nil { bindBlob(statement, 12, candidates) } else { sqlite3_bind_null(statement, 12) }
            let code = sqlite3_step(statement)
            sqlite3_reset(statement)
            guard code == SQLITE_DONE else { throw error(code) }
            guard sqlite3_changes(db.sqliteConnection) > 0 else { continue }
            if let last = counts.indices.last, counts[last].model == d.model {
                counts[last].inserted += 1
            } else {
                counts.append((d.model, 1))
            }
        }
        let count = try db.cachedStatement(sql: """
            INSERT INTO decision_count (model, logged) VALUES (?, ?)
            ON CONFLICT (model) DO UPDATE SET logged = logged + excluded.logged
            """)
        for (model, inserted) in counts { try count.execute(arguments: [model, inserted]) }
    }

    /// Gathers a decision's lists, each in one pass, into the reused buffers (the layout is the
    /// one ``SQLiteStore`` reads back: ids joined by NUL, Float32 and Float64 values, NaN for none,
    /// a list of defaults emptied).
    private mutating func gather(_ d: DecisionRecord) {
        ids.removeAll(keepingCapacity: true)
        scores.removeAll(keepingCapacity: true)
        exploring.removeAll(keepingCapacity: true)
        propensities.removeAll(keepingCapacity: true)
        explored.removeAll(keepingCapacity: true)
        var noneExploring = true, certain = true, noneExplored = true
        for (i, shown) in d.items.enumerated() {
            if i > 0 { ids.append(0) }
            ids.append(contentsOf: shown.item.utf8)
            scores.append(shown.score)
            exploring.append(shown.exploring ?? .nan)
            propensities.append(shown.propensity ?? .nan)
            explored.append(shown.explored ? 1 : 0)
            noneExploring = noneExploring && shown.exploring == nil
            certain = certain && shown.propensity == 1
            noneExplored = noneExplored && !shown.explored
        }
        if noneExploring { exploring.removeAll(keepingCapacity: true) }
        if certain { propensities.removeAll(keepingCapacity: true) }
        if noneExplored { explored.removeAll(keepingCapacity: true) }
        candidates.removeAll(keepingCapacity: true)
        for (i, id) in (d.candidates ?? []).enumerated() {
            if i > 0 { candidates.append(0) }
            candidates.append(contentsOf: id.utf8)
        }
    }

    private func bindText(_ statement: OpaquePointer?, _ index: Int32, _ text: String) {
        var text = text
        _ = text.withUTF8 { sqlite3_bind_text(statement, index, $0.baseAddress, Int32($0.count), Self.transient) }
    }

    /// An empty list is an empty blob, not NULL (the columns are NOT NULL).
    private func bindBlob<T>(_ statement: OpaquePointer?, _ index: Int32, _ values: [T]) {
        _ = values.withUnsafeBytes { bytes in
            if bytes.isEmpty {
                sqlite3_bind_zeroblob(statement, index, 0)
            } else {
                sqlite3_bind_blob(statement, index, bytes.baseAddress, Int32(bytes.count), Self.transient)
            }
        }
    }

    private func error(_ code: Int32) -> DatabaseError {
        DatabaseError(resultCode: ResultCode(rawValue: code), message: String(cString: sqlite3_errmsg(db.sqliteConnection)))
    }

    /// SQLite copies the bound bytes before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)
}
