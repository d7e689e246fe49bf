import OspreyModel
import PostgresNIO

/// The observation log in PostgreSQL: table `observation`, one row per observation.
///
/// Sequence numbers come from the one-row table `observation_sequence`, which every append locks
/// first and raises last, in its own transaction: appenders (of every node sharing the database)
/// take turns, so sequence numbers follow commit order, a reader never sees a later number
/// before an earlier one commits, and no number is reused, erasures included. Each append is one
/// commit (`synchronous_commit = on`), its rows inserted by one statement.
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
    ]

    /// Opens the log in `database`, creating or migrating its tables.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "log", Self.migrations)
    }

    public func append(_ observations: [Observation]) throws -> [Int64?] {
        guard !observations.isEmpty else { return [] }
        return try database.transaction { s in
            let last = try s.query("SELECT last FROM observation_sequence FOR UPDATE").first.map { try $0.decode(Int64.self) } ?? 0
            // Ids already logged, per model; appenders hold the sequence row, so none is being added.
            var logged: [String: Set<String>] = [:]
            let withIds = Dictionary(grouping: observations.compactMap { o in o.observationId.map { (o.model, $0) } }, by: \.0)
            for (model, pairs) in withIds {
                let ids = pairs.map(\.1)
                let rows = try s.query("SELECT observation_id FROM observation WHERE model = \(model) AND observation_id = ANY(\(ids))")
                logged[model] = Set(try rows.map { try $0.decode(String.self) })
            }
            var seqs: [Int64?] = []
            seqs.reserveCapacity(observations.count)
            var columns = Columns()
            var next = last
            for o in observations {
                if let id = o.observationId {
                    guard logged[o.model, default: []].insert(id).inserted else { seqs.append(nil); continue }
                }
                next += 1
                seqs.append(next)
                columns.append(o, seq: next)
            }
            guard next > last else { return seqs }
            try s.execute("""
                INSERT INTO observation (seq, model, uid, item, label, time, event_id, observation_id)
                SELECT seq, model, uid, item, label, time,
                       CASE WHEN has_event THEN event_id END, CASE WHEN has_id THEN observation_id END
                FROM UNNEST(\(columns.seq)::BIGINT[], \(columns.model)::TEXT[], \(columns.uid)::TEXT[], \(columns.item)::TEXT[],
                            \(columns.label)::REAL[], \(columns.time)::DOUBLE PRECISION[], \(columns.eventId)::TEXT[],
                            \(columns.hasEvent)::BOOLEAN[], \(columns.observationId)::TEXT[], \(columns.hasId)::BOOLEAN[])
                     AS o (seq, model, uid, item, label, time, event_id, has_event, observation_id, has_id)
                """)
            try s.execute("UPDATE observation_sequence SET last = \(next)")
            return seqs
        }
    }

    /// The appended rows, a column each, for one `INSERT … SELECT FROM UNNEST`.
    private struct Columns {
        var seq: [Int64] = [], model: [String] = [], uid: [String] = [], item: [String] = []
        var label: [Float] = [], time: [Double] = []
        var eventId: [String] = [], hasEvent: [Bool] = [], observationId: [String] = [], hasId: [Bool] = []

        mutating func append(_ o: Observation, seq: Int64) {
            self.seq.append(seq)
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
