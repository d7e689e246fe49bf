import Foundation
import GRDB

/// A challenger version competing with the serving one for traffic, as the catalogue keeps it.
public struct CompetitionRecord: Sendable, Equatable {
    public var challenger: Int
    /// The allocation in its API form, e.g. `split(0.1)` or `thompson`.
    public var allocation: String
    /// When it started (seconds since the epoch): names the competition's user assignments.
    public var since: Double

    public init(challenger: Int, allocation: String, since: Double) {
        self.challenger = challenger
        self.allocation = allocation
        self.since = since
    }
}

/// One user's allocation in a competition.
public struct Assignment: Sendable, Equatable {
    public var model: String
    public var since: Double
    public var uid: String
    public var version: Int

    public init(model: String, since: Double, uid: String, version: Int) {
        self.model = model
        self.since = since
        self.uid = uid
        self.version = version
    }
}

/// Competitions (champion and challenger) in the catalogue; user assignments beside the
/// decisions, in `decisions.sqlite`.
extension SQLiteStore {
    /// Each model's running competition.
    public func competitions() throws -> [String: CompetitionRecord] {
        try pool.read { db in
            var out: [String: CompetitionRecord] = [:]
            let rows = try Row.fetchAll(db, sql: """
                SELECT name, challenger_version, challenger_allocation, challenger_since FROM model
                WHERE challenger_version IS NOT NULL
                """)
            for row in rows {
                out[row[0]] = CompetitionRecord(challenger: row[1], allocation: row[2], since: row[3])
            }
            return out
        }
    }

    /// Starts (or, with nil, ends) the model's competition; the challenger's status is
    /// `challenger` while it competes, `retired` after.
    /// - Throws: ``StorageError`` `.notFound` for an unknown model or challenger version.
    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try pool.write { db in
            if let record {
                guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM version WHERE model = ? AND number = ?",
                                       arguments: [model, record.challenger]) ?? 0 > 0 else {
                    throw StorageError(.notFound, "model \(model) has no version \(record.challenger)")
                }
            }
            try db.execute(
                sql: "UPDATE model SET challenger_version = ?, challenger_allocation = ?, challenger_since = ? WHERE name = ?",
                arguments: [record?.challenger, record?.allocation, record?.since, model])
            guard db.changesCount > 0 else { throw StorageError(.notFound, "model \(model) does not exist") }
            try db.execute(sql: "UPDATE version SET status = 'retired' WHERE model = ? AND status = 'challenger'", arguments: [model])
            if let record {
                try db.execute(sql: "UPDATE version SET status = 'challenger' WHERE model = ? AND number = ?",
                               arguments: [model, record.challenger])
            }
        }
    }

    /// Makes the challenger the serving version and ends the competition, in one transaction.
    public func promoteChallenger(model: String, version: Int) throws {
        try pool.write { db in
            try Self.serve(db, model: model, version: version)
            try db.execute(
                sql: "UPDATE model SET challenger_version = NULL, challenger_allocation = NULL, challenger_since = NULL WHERE name = ?",
                arguments: [model])
        }
    }

    /// Records user assignments (a repeated one is ignored: the first allocation stands).
    public func appendAssignments(_ assignments: [Assignment]) throws {
        guard !assignments.isEmpty else { return }
        try decisionPool.write { db in
            let insert = try db.cachedStatement(
                sql: "INSERT OR IGNORE INTO assignment (model, since, uid, version) VALUES (?, ?, ?, ?)")
            for a in assignments { try insert.execute(arguments: [a.model, a.since, a.uid, a.version]) }
        }
    }

    /// The users allocated in the model's competition started at `since`, with their versions.
    public func assignments(model: String, since: Double) throws -> [String: Int] {
        try decisionPool.read { db in
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
        try decisionPool.read { db in
            var out: [String: Int] = [:]
            let start = try Self.firstDecisionRowid(db, atOrAfter: since - 60)
            let rows = try Row.fetchCursor(db, sql: "SELECT event_id, version FROM decision WHERE rowid >= ? AND model = ? AND time >= ?",
                                           arguments: [start, model, since])
            while let row = try rows.next() { out[row[0]] = row[1] }
            return out
        }
    }
}
