import Foundation
import NIOCore
import PostgresNIO

/// The decision log in PostgreSQL: table `decision` (its `seq` follows the log's order),
/// `decision_count` (each model's decisions ever logged) and `assignment` (competition
/// allocations). A decision's lists are stored as in the SQLite store (``DecisionLists``), each
/// a `BYTEA`.
///
/// Appends take turns (a transaction-level advisory lock, held to the commit), and each numbers
/// its decisions on from the highest `seq` there is: `seq` follows commit order across the nodes
/// sharing the database, a reader never sees a later decision before an earlier one commits, and
/// besides the pruned prefix only a user's erasure leaves gaps, as SQLite's rowids do. Each
/// batch is one `INSERT … SELECT FROM UNNEST` that also adds to the models' counts.
public final class PostgresDecisionStore: DecisionStore, Sendable {
    /// The database the decisions are in.
    public let database: PostgresDatabase

    /// The log's tables, one migration per change; a shipped one is never edited.
    static let migrations = [
        """
        CREATE TABLE decision (
            seq BIGINT PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            model TEXT NOT NULL,
            version BIGINT NOT NULL,
            uid TEXT NOT NULL,
            policy TEXT NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            items BYTEA NOT NULL,
            scores BYTEA NOT NULL,
            exploring BYTEA NOT NULL,
            propensities BYTEA NOT NULL,
            explored BYTEA NOT NULL,
            candidates BYTEA
        );
        CREATE TABLE decision_count (
            model TEXT PRIMARY KEY,
            logged BIGINT NOT NULL
        );
        CREATE TABLE assignment (
            model TEXT NOT NULL,
            since DOUBLE PRECISION NOT NULL,
            uid TEXT NOT NULL,
            version BIGINT NOT NULL,
            PRIMARY KEY (model, since, uid)
        );
        """,
    ]

    /// Opens the decision log in `database`, creating or migrating its tables.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "decisions", Self.migrations)
    }

    /// Appends decisions in one transaction, and adds those appended to their models' counts
    /// (``decisionCount(model:)``). Event ids are unique; a repeated one is ignored (the first
    /// stands, in the same batch too). With `trimBefore` or `trimKeep`, the same transaction then
    /// deletes the oldest decisions those limits no longer keep (see
    /// ``pruneDecisions(before:keep:batch:maxBatches:)``), up to twice as many as it appended.
    /// Returns how many it deleted. O(appended · log n + deleted), in four round trips and the
    /// trim's two or three.
    @discardableResult
    public func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double?, trimKeep: Int?) throws -> Int {
        guard !decisions.isEmpty else { return 0 }
        var columns = Columns()
        for d in decisions { columns.append(d) }
        return try database.transaction { s in
            try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.decisionAppend))")
            // Numbered in the batch's order after the last decision, skipping repeated event ids
            // (those logged, and the later of two in the batch), so the numbers have no gaps.
            try s.execute("""
                WITH input AS (
                    SELECT * FROM UNNEST(\(columns.eventId)::TEXT[], \(columns.model)::TEXT[], \(columns.version)::BIGINT[],
                                         \(columns.uid)::TEXT[], \(columns.policy)::TEXT[], \(columns.time)::DOUBLE PRECISION[],
                                         \(columns.items)::BYTEA[], \(columns.scores)::BYTEA[], \(columns.exploring)::BYTEA[],
                                         \(columns.propensities)::BYTEA[], \(columns.explored)::BYTEA[], \(columns.candidates)::BYTEA[],
                                         \(columns.hasCandidates)::BOOLEAN[]) WITH ORDINALITY
                        AS d (event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored,
                              candidates, has_candidates, n)
                ), fresh AS (
                    SELECT DISTINCT ON (event_id) * FROM input
                    WHERE NOT EXISTS (SELECT 1 FROM decision WHERE decision.event_id = input.event_id)
                    ORDER BY event_id, n
                ), inserted AS (
                    INSERT INTO decision (seq, event_id, model, version, uid, policy, time, items, scores, exploring,
                                          propensities, explored, candidates)
                    SELECT (SELECT COALESCE(max(seq), 0) FROM decision) + row_number() OVER (ORDER BY n),
                           event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored,
                           CASE WHEN has_candidates THEN candidates END
                    FROM fresh ORDER BY n
                    ON CONFLICT (event_id) DO NOTHING
                    RETURNING model
                )
                INSERT INTO decision_count (model, logged) SELECT model, COUNT(*) FROM inserted GROUP BY model
                ON CONFLICT (model) DO UPDATE SET logged = decision_count.logged + EXCLUDED.logged
                """)
            guard trimBefore != nil || trimKeep != nil else { return 0 }
            return try Self.pruneOldest(s, before: trimBefore, keep: trimKeep, batch: 2 * decisions.count)
        }
    }

    /// The appended decisions, a column each, for one `INSERT … SELECT FROM UNNEST`.
    private struct Columns {
        var eventId: [String] = [], model: [String] = [], version: [Int] = [], uid: [String] = [], policy: [String] = []
        var time: [Double] = []
        var items: [ByteBuffer] = [], scores: [ByteBuffer] = [], exploring: [ByteBuffer] = [], propensities: [ByteBuffer] = []
        var explored: [ByteBuffer] = [], candidates: [ByteBuffer] = [], hasCandidates: [Bool] = []
        private var lists = DecisionLists()

        mutating func append(_ d: DecisionRecord) {
            lists.gather(d)
            eventId.append(d.eventId)
            model.append(d.model)
            version.append(d.version)
            uid.append(d.uid)
            policy.append(d.policy)
            time.append(d.time)
            items.append(Self.bytes(lists.ids))
            scores.append(Self.bytes(lists.scores))
            exploring.append(Self.bytes(lists.exploring))
            propensities.append(Self.bytes(lists.propensities))
            explored.append(Self.bytes(lists.explored))
            candidates.append(Self.bytes(lists.candidates))
            hasCandidates.append(d.candidates != nil)
        }

        private static func bytes<T>(_ values: [T]) -> ByteBuffer {
            values.withUnsafeBytes { ByteBuffer(bytes: $0) }
        }
    }

    /// Deletes the oldest decisions: every one logged before `before` (seconds since 1970), and
    /// beyond that all but the newest `keep`. Decisions go in log order, `batch` per transaction
    /// and at most `maxBatches` transactions, so a concurrent append waits for one batch at most.
    /// Returns how many were deleted: fewer than `batch · maxBatches` when no more were due.
    /// O(deleted + batch).
    public func pruneDecisions(before: Double?, keep: Int?, batch: Int, maxBatches: Int) throws -> Int {
        precondition(batch > 0 && (keep ?? 0) >= 0 && maxBatches > 0, "prune batch and batches must be positive, keep non-negative")
        var deleted = 0
        for _ in 0..<maxBatches {
            let n = try database.transaction { s in
                try s.execute("SELECT pg_advisory_xact_lock(\(PostgresLocks.decisionAppend))")
                return try Self.pruneOldest(s, before: before, keep: keep, batch: batch)
            }
            deleted += n
            if n < batch { break }
        }
        return deleted
    }

    /// Deletes up to `batch` of the oldest decisions that `before` and `keep` no longer keep, in
    /// the caller's transaction (which holds the append lock); returns how many.
    /// O(batch + log n).
    private static func pruneOldest(_ s: PostgresSession, before: Double?, keep: Int?, batch: Int) throws -> Int {
        guard let (first, last) = try seqs(s) else { return 0 }
        var cut = first - 1  // delete seqs up to here
        if let keep, last - first + 1 > Int64(keep) {
            cut += min(last - first + 1 - Int64(keep), Int64(batch))
        }
        if let before, cut < first - 1 + Int64(batch) {
            let window = first - 1 + Int64(batch) - cut
            // The first decision of the window not old enough, read up to it only: a log with
            // nothing old enough costs one row read, not a batch of them (each append runs this).
            let young = try s.query("""
                SELECT seq FROM (SELECT seq, time FROM decision WHERE seq > \(cut) ORDER BY seq LIMIT \(window)) w
                WHERE time >= \(before) ORDER BY seq LIMIT 1
                """).first.map { try $0.decode(Int64.self) }
            if let young {
                cut = max(cut, young - 1)
            } else {
                cut = try s.query("""
                    SELECT max(seq) FROM (SELECT seq FROM decision WHERE seq > \(cut) ORDER BY seq LIMIT \(window)) w
                    """).first.flatMap { try $0.decode(Int64?.self) } ?? cut
            }
        }
        guard cut >= first else { return 0 }
        return try s.execute("DELETE FROM decision WHERE seq <= \(cut)")
    }

    /// The first and last `seq` of the decisions, nil when there are none. Besides prefixes only
    /// a user's erasure deletes, leaving gaps: then a `keep` prune keeps a few fewer than `keep`,
    /// and the binary search below lets the next row stand in for a missing one. O(log n).
    private static func seqs(_ s: PostgresSession) throws -> (first: Int64, last: Int64)? {
        guard let row = try s.query("SELECT min(seq), max(seq) FROM decision").first,
              case let (first?, last?) = try row.decode((Int64?, Int64?).self)
        else { return nil }
        return (first, last)
    }

    /// The first `seq` of the decisions logged at or after `time` (seconds since 1970), or the
    /// next one to be used when none is: a binary search over the `seq`s, run by the server in one
    /// query, O(log n) rows read. `seq` follows the log order and decisions are logged in time
    /// order (one writer, timestamps taken just before the append), so this holds as long as the
    /// clock does not step back; callers searching from a time allow a margin for that.
    static func firstDecisionSeq(_ s: PostgresSession, atOrAfter time: Double) throws -> Int64 {
        // The answer is in [low, high]; the next row stands in for a missing one (an erasure's gap).
        let row = try s.query("""
            WITH RECURSIVE search (low, high) AS (
                SELECT min(seq), max(seq) + 1 FROM decision
                UNION ALL
                SELECT CASE WHEN t < \(time) THEN mid + 1 ELSE low END, CASE WHEN t < \(time) THEN high ELSE mid END
                FROM (SELECT low, high, low + (high - low) / 2 AS mid FROM search WHERE low < high) m,
                     LATERAL (SELECT COALESCE((SELECT time FROM decision WHERE seq >= mid ORDER BY seq LIMIT 1),
                                              'Infinity'::DOUBLE PRECISION) AS t) x
            )
            SELECT low FROM search WHERE low >= high
            """).first
        return try row.map { try $0.decode(Int64.self) } ?? 1
    }

    /// The decision logged under `eventId`, or nil. O(log n).
    public func decision(eventId: String) throws -> DecisionRecord? {
        try database.withConnection { s in
            try s.query("SELECT \(unescaped: Self.decisionColumns) FROM decision WHERE event_id = \(eventId)").first.map(Self.decision)
        }
    }

    /// The model's latest `limit` decisions, oldest first. O(n) at worst (no index by model),
    /// reading the log from its newest.
    public func decisions(model: String, limit: Int) throws -> [DecisionRecord] {
        try database.withConnection { s in
            try s.query("""
                SELECT \(unescaped: Self.decisionColumns) FROM (
                    SELECT * FROM decision WHERE model = \(model) ORDER BY seq DESC LIMIT \(limit)
                ) d ORDER BY seq
                """).map(Self.decision)
        }
    }

    /// The number of decisions ever logged for the model: pruning the oldest leaves it. O(log m)
    /// for m models.
    public func decisionCount(model: String) throws -> Int {
        try database.withConnection { s in
            try s.query("SELECT logged FROM decision_count WHERE model = \(model)").first.map { try $0.decode(Int.self) } ?? 0
        }
    }

    /// The version behind each of the model's decisions logged at or after `since`. Reads the
    /// decisions logged from a minute before `since` on (all models'), found by a binary search
    /// over the `seq`s: O(log n + those decisions). A clock stepped back by more than that minute
    /// while the competition ran hides the decisions logged before the step.
    public func decisionVersions(model: String, since: Double) throws -> [String: Int] {
        try database.transaction { s in
            var out: [String: Int] = [:]
            let start = try Self.firstDecisionSeq(s, atOrAfter: since - 60)
            try s.forEach("SELECT event_id, version FROM decision WHERE seq >= \(start) AND model = \(model) AND time >= \(since)") { row in
                let (eventId, version) = try row.decode((String, Int).self)
                out[eventId] = version
            }
            return out
        }
    }

    /// Records user assignments (a repeated one is ignored: the first allocation stands), in one
    /// statement.
    public func appendAssignments(_ assignments: [Assignment]) throws {
        guard !assignments.isEmpty else { return }
        let model = assignments.map(\.model), since = assignments.map(\.since), uid = assignments.map(\.uid)
        let version = assignments.map(\.version)
        try database.transaction { s in
            try s.execute("""
                INSERT INTO assignment (model, since, uid, version)
                SELECT model, since, uid, version
                FROM UNNEST(\(model)::TEXT[], \(since)::DOUBLE PRECISION[], \(uid)::TEXT[], \(version)::BIGINT[]) WITH ORDINALITY
                     AS a (model, since, uid, version, n)
                ORDER BY n
                ON CONFLICT (model, since, uid) DO NOTHING
                """)
        }
    }

    /// The users allocated in the model's competition started at `since`, with their versions.
    public func assignments(model: String, since: Double) throws -> [String: Int] {
        try database.transaction { s in
            var out: [String: Int] = [:]
            try s.forEach("SELECT uid, version FROM assignment WHERE model = \(model) AND since = \(since)") { row in
                let (uid, version) = try row.decode((String, Int).self)
                out[uid] = version
            }
            return out
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        try database.transaction { s in
            let decisions = try s.execute("DELETE FROM decision WHERE model = \(model) AND uid = \(uid)")
            return decisions + (try s.execute("DELETE FROM assignment WHERE model = \(model) AND uid = \(uid)"))
        }
    }

    private static let decisionColumns =
        "event_id, model, version, uid, policy, time, items, scores, exploring, propensities, explored, candidates"

    private static func decision(_ row: PostgresRow) throws -> DecisionRecord {
        let (eventId, model, version, uid, policy, time, ids, scores, exploring, propensities, explored, candidates) =
            try row.decode((String, String, Int, String, String, Double, Data, Data, Data, Data, Data, Data?).self)
        return DecisionRecord(eventId: eventId, model: model, version: version, uid: uid, policy: policy, time: time,
                              items: DecisionLists.items(ids: ids, scores: scores, exploring: exploring,
                                                         propensities: propensities, explored: explored),
                              candidates: candidates.map(DecisionLists.split))
    }
}
