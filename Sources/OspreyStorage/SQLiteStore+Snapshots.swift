import Foundation
import GRDB
import OspreyMath
import OspreyModel

/// User-weight snapshots, in `snapshots.sqlite`.
extension SQLiteStore {
    /// Writes a new version's initial user weights as its first snapshot at log sequence `seq`,
    /// replacing anything left by an earlier failed attempt.
    func saveInitialUsers(model: String, version: Int, seq: Int64, rows: [SnapshotRow]) throws {
        try snapshotPool.write { db in
            try db.execute(sql: "DELETE FROM user_state WHERE model = ? AND version = ?", arguments: [model, version])
            let insert = try db.cachedStatement(
                sql: "INSERT INTO user_state (model, version, uid, state, observations, running_loss, bootstrapped, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            for r in rows {
                try insert.execute(arguments: [model, version, r.uid, Data(r.state), r.observations, r.runningLoss, r.bootstrapped, r.seq])
            }
            try db.execute(sql: "INSERT OR REPLACE INTO snapshot (model, version, seq) VALUES (?, ?, ?)", arguments: [model, version, seq])
        }
    }

    public func loadSnapshot(model: String, version: Int) throws -> UserSnapshot {
        try snapshotPool.read { db in
            guard let seq = try Int64.fetchOne(db, sql: "SELECT seq FROM snapshot WHERE model = ? AND version = ?",
                                               arguments: [model, version])
            else { throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)") }
            var users: [String: UserWeights] = [:]
            var ahead: [String: Int64] = [:]
            let rows = try Row.fetchCursor(
                db, sql: "SELECT uid, state, observations, running_loss, bootstrapped, seq FROM user_state WHERE model = ? AND version = ?",
                arguments: [model, version])
            while let row = try rows.next() {
                let uid: String = row[0]
                let blob: Data = row[1]
                guard let ridge = try? RidgeState(serialized: blob) else {
                    throw StorageError(.corrupt, "stored weights of user \(uid) in \(model) v\(version) are unreadable")
                }
                users[uid] = UserWeights(ridge: ridge, observations: row[2], runningLoss: row[3], bootstrapped: row[4])
                let rowSeq: Int64 = row[5]
                if rowSeq > seq { ahead[uid] = rowSeq }
            }
            return UserSnapshot(seq: seq, users: users, ahead: ahead)
        }
    }

    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow]) throws {
        try snapshotPool.write { db in
            let upsert = try db.cachedStatement(
                sql: """
                    INSERT INTO user_state (model, version, uid, state, observations, running_loss, bootstrapped, seq)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(model, version, uid) DO UPDATE SET state = excluded.state,
                        observations = excluded.observations, running_loss = excluded.running_loss,
                        bootstrapped = excluded.bootstrapped, seq = excluded.seq
                    """)
            for r in rows {
                try upsert.execute(arguments: [model, version, r.uid, Data(r.state), r.observations, r.runningLoss, r.bootstrapped, r.seq])
            }
        }
    }

    public func advanceSnapshot(model: String, version: Int, to seq: Int64) throws {
        try snapshotPool.write { db in
            try db.execute(sql: "UPDATE snapshot SET seq = ? WHERE model = ? AND version = ? AND seq < ?",
                           arguments: [seq, model, version, seq])
        }
    }

    /// Deletes the stored user weights of the given versions.
    func deleteUsers(model: String, versions: [Int]) throws {
        try snapshotPool.write { db in
            for v in versions {
                try db.execute(sql: "DELETE FROM user_state WHERE model = ? AND version = ?", arguments: [model, v])
                try db.execute(sql: "DELETE FROM snapshot WHERE model = ? AND version = ?", arguments: [model, v])
            }
        }
    }

    public func userCount(model: String, version: Int) throws -> Int {
        try snapshotPool.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM user_state WHERE model = ? AND version = ?", arguments: [model, version]) ?? 0
        }
    }
}
