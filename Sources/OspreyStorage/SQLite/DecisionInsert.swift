import GRDB
import GRDBSQLite
import OspreyModel

/// Inserts decisions through SQLite's C API, binding each column straight from reused buffers:
/// this runs ~20,000 times a second under a top-k load, on the same two cores as the requests,
/// and GRDB's `StatementArguments` (an array of boxed values per row) and a fresh array per list
/// cost more than SQLite's insert itself.
struct DecisionInsert {
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
    /// one ``SQLiteDecisionStore`` reads back: ids joined by NUL, Float32 and Float64 values, NaN for none,
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
