import OspreyModel
import PostgresNIO

/// The observation log in PostgreSQL: table `observation`, one row per observation.
///
/// Sequence numbers come from the one-row table `observation_sequence`, which every append raises
/// by its size, holding the row's lock until it commits: appenders (of every node sharing the
/// database) take turns, so sequence numbers follow commit order, a reader never sees a later
/// number before an earlier one commits, and no number is reused, erasures included. Each append
/// is one statement and one commit (`synchronous_commit = on`). ``lastSequence()`` is the
/// counter: the highest number ever given, which a skipped duplicate's may be.
public final class PostgresObservationLog: ObservationLog, Sendable {
    /// The database the log is in.
    public let database: PostgresDatabase

    /// The log's tables, one migration per change; a shipped one is never edited.
    static let migrations = [
        """
        CREATE TABLE observation (
            seq BIGINT PRIMARY KEY,
            model TEXT NOT NULL,
            uid TEXT NOT NULL,
            item TEXT NOT NULL,
            label REAL NOT NULL,
            time DOUBLE PRECISION NOT NULL,
            event_id TEXT,
            observation_id TEXT
        );
        CREATE INDEX observation_model_seq ON observation (model, seq);
        CREATE INDEX observation_event ON observation (model, event_id) WHERE event_id IS NOT NULL;
        CREATE UNIQUE INDEX observation_model_id ON observation (model, observation_id) WHERE observation_id IS NOT NULL;
        CREATE TABLE observation_sequence (last BIGINT NOT NULL);
        INSERT INTO observation_sequence (last) VALUES (0);
        """,
        // A cluster node adopting a user replays the user's log after its snapshot row.
        "CREATE INDEX observation_model_uid_seq ON observation (model, uid, seq)",
        // Which node holds each partition bucket, for fenced appends (``append(_:fence:)``).
        "CREATE TABLE cluster_bucket (bucket INTEGER PRIMARY KEY, node TEXT NOT NULL)",
    ]

    /// Opens the log in `database`, creating or migrating its tables.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "log", Self.migrations)
    }

    /// One statement, so one round trip and one commit: it raises the counter by the number of
    /// observations (locking its row until the commit), inserts them numbered on from the old
    /// value in their order, skipping an observation id the model's log holds or an earlier one
    /// of the append carries (`ON CONFLICT … DO NOTHING` on the ids' unique index), and returns
    /// the numbers it inserted. A skipped observation's number is spent, not reused.
    public func append(_ observations: [Observation]) throws -> [Int64?] {
        guard !observations.isEmpty else { return [] }
        return try append(observations, fence: nil)
    }

    /// The append's statement with the fence in it: the counter's row is taken first (so fenced
    /// appenders take turns before they lock buckets), then the fence's bucket rows are
    /// share-locked in bucket order (a claim, which takes them in the same order, waits for this
    /// commit, or this finds them claimed), and the insert runs only when all are this node's;
    /// otherwise the statement fails on purpose (a cast of `osprey-fenced`) and nothing of it
    /// stays. Still one statement and one commit.
    public func append(_ observations: [Observation], fence: AppendFence) throws -> [Int64?] {
        guard !observations.isEmpty else { return [] }
        return try append(observations, fence: Optional(fence))
    }

    /// Takes each bucket's row in bucket order, as fenced appends do.
    public func claimBuckets(_ buckets: [Int], node: String) throws {
        guard !buckets.isEmpty else { return }
        let sorted = Array(Set(buckets)).sorted()
        _ = try database.transaction { s in
            _ = try s.query("SELECT bucket FROM cluster_bucket WHERE bucket = ANY(\(sorted)::INTEGER[]) ORDER BY bucket FOR UPDATE")
            return try s.execute("""
                INSERT INTO cluster_bucket (bucket, node) SELECT b, \(node) FROM UNNEST(\(sorted)::INTEGER[]) AS b
                ON CONFLICT (bucket) DO UPDATE SET node = EXCLUDED.node
                """)
        }
    }

    /// Marks the deliberate failure of a fenced append whose node no longer holds a bucket.
    private static let fenced = "osprey-fenced"

    private func append(_ observations: [Observation], fence: AppendFence?) throws -> [Int64?] {
        var columns = Columns()
        for o in observations { columns.append(o) }
        let count = Int64(observations.count)
        // Without a fence, every bucket "held": the fence's CTE matches nothing and is not checked.
        let buckets = fence.map { Array(Set($0.buckets)).sorted() } ?? []
        let node = fence?.node ?? "", fenced = fence != nil, held = Int64(buckets.count)
        let rows: [PostgresRow]
        do {
            rows = try database.withConnection { s in
                try s.query("""
                    WITH counter AS (
                        UPDATE observation_sequence SET last = last + \(count) RETURNING last - \(count) AS base
                    ), fence AS (
                        SELECT b.bucket FROM counter, cluster_bucket b
                        WHERE \(fenced) AND b.bucket = ANY(\(buckets)::INTEGER[]) AND b.node = \(node)
                        ORDER BY b.bucket FOR SHARE OF b
                    ), checked AS (
                        SELECT CASE WHEN NOT \(fenced) OR count(*) = \(held) THEN true
                                    ELSE CAST(\(Self.fenced) || ' ' || count(*) AS BOOLEAN) END AS ok
                        FROM fence
                    ), appended AS (
                        INSERT INTO observation (seq, model, uid, item, label, time, event_id, observation_id)
                        SELECT counter.base + o.n, o.model, o.uid, o.item, o.label, o.time,
                               CASE WHEN o.has_event THEN o.event_id END, CASE WHEN o.has_id THEN o.observation_id END
                        FROM counter, checked, UNNEST(\(columns.model)::TEXT[], \(columns.uid)::TEXT[], \(columns.item)::TEXT[],
                                             \(columns.label)::REAL[], \(columns.time)::DOUBLE PRECISION[], \(columns.eventId)::TEXT[],
                                             \(columns.hasEvent)::BOOLEAN[], \(columns.observationId)::TEXT[], \(columns.hasId)::BOOLEAN[])
                             WITH ORDINALITY AS o (model, uid, item, label, time, event_id, has_event, observation_id, has_id, n)
                        WHERE checked.ok
                        ORDER BY o.n
                        ON CONFLICT (model, observation_id) WHERE observation_id IS NOT NULL DO NOTHING
                        RETURNING seq
                    )
                    SELECT counter.base, appended.seq FROM counter, appended
                    """)
            }
        } catch let error as StorageError where fence != nil && error.message.contains(Self.fenced) {
            throw StorageError(.conflict, "node \(node) no longer holds every bucket of \(buckets.prefix(8)); nothing appended")
        }
        var seqs = [Int64?](repeating: nil, count: observations.count)
        for row in rows {
            let (base, seq) = try row.decode((Int64, Int64).self)
            seqs[Int(seq - base - 1)] = seq
        }
        return seqs
    }

    /// The appended rows, a column each, for one `INSERT … SELECT FROM UNNEST`.
    private struct Columns {
        var model: [String] = [], uid: [String] = [], item: [String] = []
        var label: [Float] = [], time: [Double] = []
        var eventId: [String] = [], hasEvent: [Bool] = [], observationId: [String] = [], hasId: [Bool] = []

        mutating func append(_ o: Observation) {
            model.append(o.model)
            uid.append(o.uid)
            item.append(o.item)
            label.append(o.label)
            time.append(o.time)
            eventId.append(o.eventId ?? "")
            hasEvent.append(o.eventId != nil)
            observationId.append(o.observationId ?? "")
            hasId.append(o.observationId != nil)
        }
    }

    public func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation] {
        try database.withConnection { s in
            try s.query("""
                SELECT seq, uid, item, label, time, event_id FROM observation
                WHERE model = \(model) AND seq > \(seq) ORDER BY seq LIMIT \(limit)
                """).map { try Self.logged($0, model: model) }
        }
    }

    public func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws {
        try database.transaction { s in
            try s.forEach("""
                SELECT seq, uid, item, label, time, event_id FROM observation WHERE model = \(model) AND seq > \(seq) ORDER BY seq
                """) { try body(try Self.logged($0, model: model)) }
        }
    }

    /// Reads the user's entries in the range through the log's index on (model, seq):
    /// O(log n + the range's entries).
    public func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                                   _ body: (LoggedObservation) throws -> Void) throws {
        try database.transaction { s in
            try s.forEach("""
                SELECT seq, uid, item, label, time, event_id FROM observation
                WHERE model = \(model) AND seq >= \(range.lowerBound) AND seq < \(range.upperBound) AND uid = \(uid) ORDER BY seq
                """) { try body(try Self.logged($0, model: model)) }
        }
    }

    public func feedback(model: String) throws -> [String: DecisionFeedback] {
        try database.transaction { s in
            var out: [String: DecisionFeedback] = [:]
            try s.forEach("""
                SELECT DISTINCT ON (event_id) event_id, item, label, seq FROM observation
                WHERE model = \(model) AND event_id IS NOT NULL ORDER BY event_id, seq
                """) { row in
                let (id, item, label, seq) = try row.decode((String, String, Float, Int64).self)
                out[id] = DecisionFeedback(item: item, label: label, seq: seq)
            }
            return out
        }
    }

    public func observationCount(model: String) throws -> Int {
        try database.withConnection { s in
            try s.query("SELECT COUNT(*) FROM observation WHERE model = \(model)").first.map { try $0.decode(Int.self) } ?? 0
        }
    }

    public func lastSequence() throws -> Int64 {
        try database.withConnection { s in
            try s.query("SELECT last FROM observation_sequence").first.map { try $0.decode(Int64.self) } ?? 0
        }
    }

    /// Sequence numbers come from `observation_sequence`, so deleting rows frees none of them.
    public func deleteUser(model: String, uid: String, through seq: Int64) throws -> Int {
        try database.transaction { s in
            try s.execute("DELETE FROM observation WHERE model = \(model) AND uid = \(uid) AND seq <= \(seq)")
        }
    }

    private static func logged(_ row: PostgresRow, model: String) throws -> LoggedObservation {
        let (seq, uid, item, label, time, eventId) = try row.decode((Int64, String, String, Float, Double, String?).self)
        return LoggedObservation(seq: seq, observation: Observation(model: model, uid: uid, item: item, label: label, time: time,
                                                                    eventId: eventId))
    }
}
