import Foundation
import GRDB
import OspreyModel

/// The observation log in `osprey.sqlite`: table `observation`, one row per observation, its
/// `seq` the rowid (so sequence numbers follow commit order and are never reused). The log has no
/// index by user: one would put every appended observation on a random B-tree leaf, one more WAL
/// page per observation in each group commit. The database also holds the catalogue (its
/// migrations shipped in one migrator), which ``SQLiteVersionStore`` works on.
public final class SQLiteObservationLog: ObservationLog, Sendable {
    /// The database the log is in.
    public let database: SQLiteDatabase
    private var pool: DatabasePool { database.pool }

    init(database: SQLiteDatabase) {
        self.database = database
    }

    /// A SQLite log is one process's: cluster nodes share a PostgreSQL log, and refuse to start
    /// on anything else.
    public func append(_ observations: [Observation], fence: AppendFence) throws -> [Int64?] {
        throw StorageError(.conflict, "a SQLite log serves one process; cluster nodes append to PostgreSQL")
    }

    public func claimBuckets(_ buckets: [Int], node: String) throws {
        throw StorageError(.conflict, "a SQLite log serves one process; cluster nodes claim buckets in PostgreSQL")
    }

    public func append(_ observations: [Observation]) throws -> [Int64?] {
        guard !observations.isEmpty else { return [] }
        return try pool.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT INTO observation (model, uid, item, label, time, event_id) VALUES (?, ?, ?, ?, ?, ?)")
            // An observation with an id is skipped when the id is logged (the partial unique index).
            let insertWithID = try db.cachedStatement(sql: """
                INSERT INTO observation (model, uid, item, label, time, event_id, observation_id) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (model, observation_id) WHERE observation_id IS NOT NULL DO NOTHING
                """)
            var seqs: [Int64?] = []
            seqs.reserveCapacity(observations.count)
            for o in observations {
                if let id = o.observationId {
                    try insertWithID.execute(arguments: [o.model, o.uid, o.item, Double(o.label), o.time, o.eventId, id])
                    seqs.append(db.changesCount > 0 ? db.lastInsertedRowID : nil)
                } else {
                    try insert.execute(arguments: [o.model, o.uid, o.item, Double(o.label), o.time, o.eventId])
                    seqs.append(db.lastInsertedRowID)
                }
            }
            return seqs
        }
    }

    public func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation] {
        try pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT seq, uid, item, label, time, event_id FROM observation WHERE model = ? AND seq > ? ORDER BY seq LIMIT ?",
                arguments: [model, seq, limit]
            ).map { row in
                LoggedObservation(seq: row[0], observation: Observation(
                    model: model, uid: row[1], item: row[2], label: Float(row[3] as Double), time: row[4], eventId: row[5]))
            }
        }
    }

    public func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, uid, item, label, time, event_id FROM observation WHERE model = ? AND seq > ? ORDER BY seq",
                arguments: [model, seq])
            while let row = try rows.next() {
                let o = Observation(model: model, uid: row[1], item: row[2], label: Float(row[3] as Double), time: row[4],
                                    eventId: row[5])
                try body(LoggedObservation(seq: row[0], observation: o))
            }
        }
    }

    /// Reads every observation of the model in the range (no index by user):
    /// O(log n + the range's entries). Rare: only users whose learning failed have entries to replay.
    public func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                                   _ body: (LoggedObservation) throws -> Void) throws {
        try pool.read { db in
            let rows = try Row.fetchCursor(
                db, sql: "SELECT seq, item, label, time, event_id FROM observation WHERE model = ? AND seq >= ? AND seq < ? AND uid = ? ORDER BY seq",
                arguments: [model, range.lowerBound, range.upperBound, uid])
            while let row = try rows.next() {
                let o = Observation(model: model, uid: uid, item: row[1], label: Float(row[2] as Double), time: row[3], eventId: row[4])
                try body(LoggedObservation(seq: row[0], observation: o))
            }
        }
    }

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

    public func observationCount(model: String) throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM observation WHERE model = ?", arguments: [model]) ?? 0 }
    }

    public func lastSequence() throws -> Int64 {
        try pool.read { db in try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM observation") ?? 0 }
    }

    /// `seq` is a rowid without AUTOINCREMENT, so the next append takes the highest rowid plus
    /// one: the log's newest row, if it is the user's, is blanked (a row of no model, which no
    /// read names) instead of deleted, so its sequence number is never taken again.
    public func deleteUser(model: String, uid: String, through seq: Int64) throws -> Int {
        try pool.write { db in
            let last = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM observation") ?? 0
            try db.execute(sql: "DELETE FROM observation WHERE model = ? AND uid = ? AND seq <= ? AND seq < ?",
                           arguments: [model, uid, seq, last])
            var erased = db.changesCount
            try db.execute(sql: """
                UPDATE observation SET model = '', uid = '', item = '', label = 0, time = 0, event_id = NULL, observation_id = NULL
                WHERE seq = ? AND seq <= ? AND model = ? AND uid = ?
                """, arguments: [last, seq, model, uid])
            erased += db.changesCount
            return erased
        }
    }
}
