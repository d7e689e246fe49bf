import Foundation
import NIOCore
import OspreyMath
import OspreyModel
import PostgresNIO

/// User-weight snapshots in PostgreSQL, the twin of ``SQLiteSnapshotStore`` with the same
/// semantics (``SnapshotStore``) and the same blobs (``SnapshotRowKey``, ``Float32Blob``).
/// Tables: `user_ridge` (full ridge states, "RDG3"), `user_weights` (their compact twins,
/// written by the same statement), `item_state` (items' online ridge states), `kept_user` and
/// `kept_item` (the rows a snapshot in progress overwrote, as they were before it;
/// `PostgresSnapshotStore+Kept.swift`), `snapshot_sequence` (each version's snapshot sequence),
/// `user_item` (items users observed) and `hot_user` (the users hot at the last snapshot).
///
/// A write of many rows is one statement (`INSERT … SELECT FROM UNNEST(…) ON CONFLICT … DO
/// UPDATE`), its columns sent as arrays: one round trip per chunk, not per row. Keys are
/// `COLLATE "C"`, so their order is byte order, as in SQLite.
public final class PostgresSnapshotStore: SnapshotStore, Sendable {
    /// The database the snapshots are in.
    public let database: PostgresDatabase

    /// The store's tables, one migration per change; a shipped one is never edited. State blobs
    /// are stored `EXTERNAL`: out of line without compression, which float data would not repay.
    static let migrations = [
        """
        CREATE TABLE user_ridge (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            uid TEXT COLLATE "C" NOT NULL,
            observations BIGINT NOT NULL,
            running_loss DOUBLE PRECISION,
            bootstrapped BOOLEAN NOT NULL,
            seq BIGINT NOT NULL,
            state BYTEA NOT NULL,
            PRIMARY KEY (model, version, uid)
        );
        ALTER TABLE user_ridge ALTER COLUMN state SET STORAGE EXTERNAL;
        CREATE INDEX user_ridge_user ON user_ridge (model, uid);
        CREATE TABLE user_weights (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            uid TEXT COLLATE "C" NOT NULL,
            observations BIGINT NOT NULL,
            running_loss DOUBLE PRECISION,
            bootstrapped BOOLEAN NOT NULL,
            seq BIGINT NOT NULL,
            weights BYTEA NOT NULL,
            PRIMARY KEY (model, version, uid)
        );
        CREATE INDEX user_weights_user ON user_weights (model, uid);
        CREATE TABLE snapshot_sequence (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            seq BIGINT NOT NULL,
            PRIMARY KEY (model, version)
        );
        CREATE TABLE item_state (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            item TEXT COLLATE "C" NOT NULL,
            observations BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            state BYTEA NOT NULL,
            PRIMARY KEY (model, version, item)
        );
        ALTER TABLE item_state ALTER COLUMN state SET STORAGE EXTERNAL;
        CREATE TABLE kept_user (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            uid TEXT COLLATE "C" NOT NULL,
            present BOOLEAN NOT NULL,
            observations BIGINT,
            running_loss DOUBLE PRECISION,
            bootstrapped BOOLEAN,
            seq BIGINT,
            weights BYTEA,
            state BYTEA,
            PRIMARY KEY (model, version, uid)
        );
        ALTER TABLE kept_user ALTER COLUMN state SET STORAGE EXTERNAL;
        CREATE TABLE kept_item (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            item TEXT COLLATE "C" NOT NULL,
            present BOOLEAN NOT NULL,
            observations BIGINT,
            seq BIGINT,
            state BYTEA,
            PRIMARY KEY (model, version, item)
        );
        ALTER TABLE kept_item ALTER COLUMN state SET STORAGE EXTERNAL;
        CREATE TABLE user_item (
            model TEXT COLLATE "C" NOT NULL,
            uid TEXT COLLATE "C" NOT NULL,
            item TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (model, uid, item)
        );
        CREATE TABLE hot_user (
            model TEXT COLLATE "C" NOT NULL,
            version INTEGER NOT NULL,
            uid TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (model, version, uid)
        );
        CREATE INDEX hot_user_user ON hot_user (model, uid);
        """,
    ]

    /// Opens the snapshot store in `database`, creating or migrating its tables.
    public init(database: PostgresDatabase) throws {
        self.database = database
        try database.migrate(store: "snapshots", Self.migrations)
    }

    /// The rows of full states read per round trip by a cursor: ~10 MB at d = 50.
    static let stateBatch = 1_000

    /// The tables a version's rows are in (all but the observed items, which are per model).
    static let versionTables = ["user_ridge", "user_weights", "item_state", "kept_user", "kept_item", "snapshot_sequence"]

    public func replaceUsers(model: String, version: Int, reflecting seq: Int64,
                             _ rows: (_ write: ([SnapshotRow]) throws -> Void) throws -> Void) throws {
        try database.transaction { s in
            for table in Self.versionTables {
                try s.execute("DELETE FROM \(unescaped: table) WHERE model = \(model) AND version = \(version)")
            }
        }
        try rows { chunk in
            try database.transaction { s in try Self.upsert(chunk, model: model, version: version, keepingPrevious: false, s) }
        }
        // Last: a version whose sequence exists has all its users.
        try database.transaction { s in
            try s.execute("""
                INSERT INTO snapshot_sequence (model, version, seq) VALUES (\(model), \(version), \(seq))
                ON CONFLICT (model, version) DO UPDATE SET seq = EXCLUDED.seq
                """)
        }
    }

    /// O(rows · (d² + log n)), in one round trip for the rows and one for the observed items.
    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem], keepingPrevious: Bool) throws {
        guard !rows.isEmpty || !observedItems.isEmpty else { return }
        try database.transaction { s in
            try Self.upsert(rows, model: model, version: version, keepingPrevious: keepingPrevious, s)
            try Self.insert(observedItems, model: model, s)
        }
    }

    /// Writes (or replaces) each row's full state in `user_ridge` and its compact twin in
    /// `user_weights` by one statement, in the caller's transaction, so the two never disagree.
    /// With `keepingPrevious`, the same statement first keeps each user's previous row in
    /// `kept_user` (or marks it absent) unless a copy is kept already: its sub-statements all
    /// read the rows as they were before it. A user named twice is written once, as its last row
    /// (what writing the rows in turn leaves). O(rows · (d² + log n)).
    static func upsert(_ rows: [SnapshotRow], model: String, version: Int, keepingPrevious: Bool, _ s: PostgresSession) throws {
        guard !rows.isEmpty else { return }
        var c = UserColumns()
        // In key order, so that two nodes writing overlapping users (a bucket handed over) lock
        // their rows in one order and cannot deadlock.
        for r in lastOfEach(rows, key: \.uid).sorted(by: { $0.uid < $1.uid }) { c.append(r) }
        try s.execute("""
            WITH input AS (
                SELECT * FROM UNNEST(\(c.uid)::TEXT[], \(c.observations)::BIGINT[], \(c.runningLoss)::DOUBLE PRECISION[],
                                     \(c.hasLoss)::BOOLEAN[], \(c.bootstrapped)::BOOLEAN[], \(c.seq)::BIGINT[], \(c.weights)::BYTEA[],
                                     \(c.state)::BYTEA[])
                    AS i (uid, observations, running_loss, has_loss, bootstrapped, seq, weights, state)
            ), kept AS (
                INSERT INTO kept_user (model, version, uid, present, observations, running_loss, bootstrapped, seq, weights, state)
                SELECT \(model), \(version), i.uid, r.uid IS NOT NULL, r.observations, r.running_loss, r.bootstrapped, r.seq,
                       w.weights, r.state
                FROM input i LEFT JOIN (user_ridge r JOIN user_weights w ON w.model = r.model AND w.version = r.version AND w.uid = r.uid)
                    ON r.model = \(model) AND r.version = \(version) AND r.uid = i.uid
                WHERE \(keepingPrevious)
                ON CONFLICT (model, version, uid) DO NOTHING
            ), ridge AS (
                INSERT INTO user_ridge (model, version, uid, observations, running_loss, bootstrapped, seq, state)
                SELECT \(model), \(version), uid, observations, CASE WHEN has_loss THEN running_loss END, bootstrapped, seq, state
                FROM input
                ON CONFLICT (model, version, uid) DO UPDATE SET observations = EXCLUDED.observations,
                    running_loss = EXCLUDED.running_loss, bootstrapped = EXCLUDED.bootstrapped, seq = EXCLUDED.seq,
                    state = EXCLUDED.state
            )
            INSERT INTO user_weights (model, version, uid, observations, running_loss, bootstrapped, seq, weights)
            SELECT \(model), \(version), uid, observations, CASE WHEN has_loss THEN running_loss END, bootstrapped, seq, weights
            FROM input
            ON CONFLICT (model, version, uid) DO UPDATE SET observations = EXCLUDED.observations,
                running_loss = EXCLUDED.running_loss, bootstrapped = EXCLUDED.bootstrapped, seq = EXCLUDED.seq,
                weights = EXCLUDED.weights
            """)
    }

    /// Users' rows, a column each, for one `INSERT … SELECT FROM UNNEST`; a running loss of nil
    /// is `hasLoss` false (array elements are not nullable here).
    private struct UserColumns {
        var uid: [String] = [], observations: [Int] = [], runningLoss: [Double] = [], hasLoss: [Bool] = []
        var bootstrapped: [Bool] = [], seq: [Int64] = [], weights: [ByteBuffer] = [], state: [ByteBuffer] = []

        mutating func append(_ r: SnapshotRow) {
            uid.append(r.uid)
            observations.append(r.observations)
            runningLoss.append(r.runningLoss ?? 0)
            hasLoss.append(r.runningLoss != nil)
            bootstrapped.append(r.bootstrapped)
            seq.append(r.seq)
            weights.append(ByteBuffer(bytes: Float32Blob.data(r.weights)))
            state.append(ByteBuffer(bytes: r.state))
        }
    }

    /// `rows` with only the last of the rows sharing a key, in their order. O(rows).
    static func lastOfEach<Row>(_ rows: [Row], key: (Row) -> String) -> [Row] {
        var seen = Set<String>()
        var out: [Row] = []
        out.reserveCapacity(rows.count)
        for r in rows.reversed() where seen.insert(key(r)).inserted { out.append(r) }
        return out.reversed()
    }

    /// O(items · log n), in one round trip.
    public func saveObservedItems(model: String, _ items: [ObservedItem]) throws {
        guard !items.isEmpty else { return }
        try database.transaction { s in try Self.insert(items, model: model, s) }
    }

    /// Records observed items by one statement; ones already recorded, or named twice, are ignored.
    private static func insert(_ items: [ObservedItem], model: String, _ s: PostgresSession) throws {
        guard !items.isEmpty else { return }
        // In key order: nodes recording the same user's items lock them in one order (no deadlock).
        let items = items.sorted { ($0.uid, $0.item) < ($1.uid, $1.item) }
        try s.execute("""
            INSERT INTO user_item (model, uid, item)
            SELECT \(model), uid, item FROM UNNEST(\(items.map(\.uid))::TEXT[], \(items.map(\.item))::TEXT[]) AS o (uid, item)
            ON CONFLICT (model, uid, item) DO NOTHING
            """)
    }

    /// A primary-key range read of `user_item`, in item order. O(log n + rows).
    public func observedItems(model: String, uid: String) throws -> [String] {
        try database.withConnection { s in
            try s.query("SELECT item FROM user_item WHERE model = \(model) AND uid = \(uid) ORDER BY item")
                .map { try $0.decode(String.self) }
        }
    }

    /// Reads the sequence and the rows in one repeatable-read transaction, so they are of one
    /// moment. O(users · d²).
    public func loadSnapshot(model: String, version: Int, dimension: Int) throws -> UserSnapshot {
        try database.transaction { s in
            try s.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            guard let seq = try Self.sequence(model: model, version: version, s) else {
                throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)")
            }
            var users: [String: UserWeights] = [:]
            var ahead: [String: Int64] = [:]
            try s.forEach("""
                SELECT uid, state, observations, running_loss, bootstrapped, seq FROM user_ridge
                WHERE model = \(model) AND version = \(version)
                """, batch: Self.stateBatch) { row in
                let (uid, state, observations, runningLoss, bootstrapped, rowSeq) = try row.decode((String, Data, Int, Double?, Bool, Int64).self)
                let key = SnapshotRowKey(table: "user_ridge", model: model, version: version, uid: uid)
                users[uid] = UserWeights(ridge: try key.ridgeState(state, dimension: dimension), observations: observations,
                                         runningLoss: runningLoss, bootstrapped: bootstrapped)
                if rowSeq > seq { ahead[uid] = rowSeq }
            }
            return UserSnapshot(seq: seq, users: users, ahead: ahead)
        }
    }

    public func snapshotSequence(model: String, version: Int) throws -> Int64 {
        try database.withConnection { s in
            guard let seq = try Self.sequence(model: model, version: version, s) else {
                throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)")
            }
            return seq
        }
    }

    private static func sequence(model: String, version: Int, _ s: PostgresSession) throws -> Int64? {
        try s.query("SELECT seq FROM snapshot_sequence WHERE model = \(model) AND version = \(version)").first
            .map { try $0.decode(Int64.self) }
    }

    /// Streams `user_weights` through a cursor, a batch at a time. O(users · d).
    public func forEachStoredWeights(model: String, version: Int, dimension: Int, _ body: (StoredWeights) throws -> Void) throws {
        try database.transaction { s in
            try s.forEach("""
                SELECT uid, weights, observations, running_loss, bootstrapped, seq FROM user_weights
                WHERE model = \(model) AND version = \(version)
                """) { row in
                let (uid, blob, observations, runningLoss, bootstrapped, seq) = try row.decode((String, Data, Int, Double?, Bool, Int64).self)
                let key = SnapshotRowKey(table: "user_weights", model: model, version: version, uid: uid)
                try body(StoredWeights(uid: uid, weights: try key.weights(blob, dimension: dimension), observations: observations,
                                       runningLoss: runningLoss, bootstrapped: bootstrapped, seq: seq))
            }
        }
    }

    /// One primary-key read, outside any explicit transaction (one statement reads consistently
    /// on its own). O(d² + log n).
    public func loadUserState(model: String, version: Int, uid: String, dimension: Int) throws -> (weights: UserWeights, seq: Int64)? {
        try database.withConnection { s in
            guard let row = try s.query("""
                SELECT state, observations, running_loss, bootstrapped, seq FROM user_ridge
                WHERE model = \(model) AND version = \(version) AND uid = \(uid)
                """).first else { return nil }
            let (state, observations, runningLoss, bootstrapped, seq) = try row.decode((Data, Int, Double?, Bool, Int64).self)
            let ridge = try SnapshotRowKey(table: "user_ridge", model: model, version: version, uid: uid).ridgeState(state, dimension: dimension)
            return (UserWeights(ridge: ridge, observations: observations, runningLoss: runningLoss, bootstrapped: bootstrapped), seq)
        }
    }

    /// Counts the compact table, which has the same rows as the full one and a fraction of its
    /// pages. O(users).
    public func userCount(model: String, version: Int) throws -> Int {
        try database.withConnection { s in
            try s.query("SELECT COUNT(*) FROM user_weights WHERE model = \(model) AND version = \(version)").first
                .map { try $0.decode(Int.self) } ?? 0
        }
    }

    /// One delete and one insert of all the users, in one transaction. O(users · log users).
    public func saveHotUsers(model: String, version: Int, _ uids: [String]) throws {
        try database.transaction { s in
            try s.execute("DELETE FROM hot_user WHERE model = \(model) AND version = \(version)")
            guard !uids.isEmpty else { return }
            try s.execute("""
                INSERT INTO hot_user (model, version, uid) SELECT DISTINCT \(model), \(version), uid FROM UNNEST(\(uids)::TEXT[]) AS h (uid)
                """)
        }
    }

    /// In uid order. O(users).
    public func hotUsers(model: String, version: Int) throws -> [String] {
        try database.withConnection { s in
            try s.query("SELECT uid FROM hot_user WHERE model = \(model) AND version = \(version) ORDER BY uid")
                .map { try $0.decode(String.self) }
        }
    }

    public func advanceSnapshot(model: String, version: Int, to seq: Int64) throws {
        try database.transaction { s in
            try s.execute("UPDATE snapshot_sequence SET seq = \(seq) WHERE model = \(model) AND version = \(version) AND seq < \(seq)")
            // The snapshot completed: nothing of it is to be undone.
            try Self.dropKept(model: model, version: version, s)
        }
    }

    public func deleteVersion(model: String, version: Int, limit: Int) throws -> Int {
        precondition(limit > 0, "a version is deleted at least one row at a time")
        return try database.transaction { s in
            var deleted = 0
            // The snapshot sequence last (`versionTables` ends with it), once nothing else is left.
            for table in Self.versionTables.dropLast() + ["hot_user"] where deleted < limit {
                deleted += try s.execute("""
                    DELETE FROM \(unescaped: table) WHERE ctid = ANY(ARRAY(
                        SELECT ctid FROM \(unescaped: table) WHERE model = \(model) AND version = \(version) LIMIT \(limit - deleted)))
                    """)
            }
            if deleted == 0 {
                deleted = try s.execute("DELETE FROM snapshot_sequence WHERE model = \(model) AND version = \(version)")
            }
            return deleted
        }
    }

    public func storedVersions(model: String) throws -> [Int] {
        try database.transaction { s in
            var versions = Set<Int>()
            for table in Self.versionTables + ["hot_user"] {
                // One index seek per version: each table's key begins with model and version.
                var after = Int(Int32.min)
                while let v = try s.query("SELECT MIN(version) FROM \(unescaped: table) WHERE model = \(model) AND version > \(after)")
                    .first?.decode(Int32?.self) {
                    versions.insert(Int(v))
                    after = Int(v)
                }
            }
            return versions.sorted()
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        try database.transaction { s in
            // `user_ridge` is the twin of `user_weights`: the same (model, version, uid) rows.
            try s.execute("DELETE FROM user_ridge WHERE model = \(model) AND uid = \(uid)")
            // So that no restore of an interrupted snapshot brings the user back; not counted.
            try s.execute("DELETE FROM kept_user WHERE model = \(model) AND uid = \(uid)")
            var erased = 0
            for table in ["user_weights", "user_item", "hot_user"] {
                erased += try s.execute("DELETE FROM \(unescaped: table) WHERE model = \(model) AND uid = \(uid)")
            }
            return erased
        }
    }
}
