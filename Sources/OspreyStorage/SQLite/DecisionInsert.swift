import GRDB
import GRDBSQLite
import OspreyModel

/// Inserts decisions through SQLite's C API, binding each column straight from reused buffers:
/// this runs ~20,000 times a second under a top-k load, on the same two cores as the requests,
/// and GRDB's `StatementArguments` (an array of boxed values per row) and a fresh array per list
/// cost more than SQLite's insert itself.
struct DecisionInsert {
    private let db: Database
    private var lists = DecisionLists()

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
            lists.gather(d)
            bindText(statement, 1, d.eventId)
            bindText(statement, 2, d.model)
            sqlite3_bind_int64(statement, 3, Int64(d.version))
            bindText(statement, 4, d.uid)
            bindText(statement, 5, d.policy)
            sqlite3_bind_double(statement, 6, d.time)
            bindBlob(statement, 7, lists.ids)
            bindBlob(statement, 8, lists.scores)
            bindBlob(statement, 9, lists.exploring)
            bindBlob(statement, 10, lists.propensities)
            bindBlob(statement, 11, lists.explored)
            if d.candidates != nil { bindBlob(statement, 12, lists.candidates) } else { sqlite3_bind_null(statement, 12) }
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
