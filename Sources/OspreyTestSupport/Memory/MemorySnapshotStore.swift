import OspreyMath
import OspreyModel
import OspreyStorage
import Synchronization

/// A ``SnapshotStore`` in memory. Rows are kept serialized, as the SQLite store keeps them, so a
/// rebuild from a row goes through the same (de)serialization and is exact in the same way.
public final class MemorySnapshotStore: SnapshotStore, Sendable {
    private struct Key: Hashable {
        var model: String
        var version: Int
    }

    /// A row kept by a write with `keepingPrevious`: its previous content, nil when it was absent.
    private enum Kept {
        case user(SnapshotRow?)
        case item(ItemStateRow?)
    }

    private struct KeptKey: Hashable {
        var isItem: Bool
        var key: String
    }

    private struct State {
        var rows: [Key: [String: SnapshotRow]] = [:]
        var items: [Key: [String: ItemStateRow]] = [:]
        var kept: [Key: [KeptKey: Kept]] = [:]
        var seq: [Key: Int64] = [:]
        var hot: [Key: [String]] = [:]
        var observed: [String: [String: Set<String>]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func replaceUsers(model: String, version: Int, reflecting seq: Int64,
                             _ rows: (_ write: ([SnapshotRow]) throws -> Void) throws -> Void) throws {
        let key = Key(model: model, version: version)
        state.withLock { s in
            s.rows[key] = [:]
            s.items[key] = nil
            s.kept[key] = nil
            s.seq[key] = nil
        }
        try rows { chunk in state.withLock { s in for r in chunk { s.rows[key, default: [:]][r.uid] = r } } }
        state.withLock { $0.seq[key] = seq }
    }

    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem], keepingPrevious: Bool) throws {
        let key = Key(model: model, version: version)
        state.withLock { s in
            for r in rows {
                // Only the first copy counts: the row as it was before the snapshot.
                if keepingPrevious, s.kept[key]?[KeptKey(isItem: false, key: r.uid)] == nil {
                    s.kept[key, default: [:]][KeptKey(isItem: false, key: r.uid)] = .user(s.rows[key]?[r.uid])
                }
                s.rows[key, default: [:]][r.uid] = r
            }
            for i in observedItems { s.observed[model, default: [:]][i.uid, default: []].insert(i.item) }
        }
    }

    public func saveItemStates(model: String, version: Int, rows: [ItemStateRow], keepingPrevious: Bool) throws {
        let key = Key(model: model, version: version)
        state.withLock { s in
            for r in rows {
                if keepingPrevious, s.kept[key]?[KeptKey(isItem: true, key: r.item)] == nil {
                    s.kept[key, default: [:]][KeptKey(isItem: true, key: r.item)] = .item(s.items[key]?[r.item])
                }
                s.items[key, default: [:]][r.item] = r
            }
        }
    }

    public func forEachItemState(model: String, version: Int, dimension: Int, _ body: (StoredItemState) throws -> Void) throws {
        let rows = state.withLock { $0.items[Key(model: model, version: version)] ?? [:] }
        // By item id bytewise, as SQLite orders text.
        for r in rows.values.sorted(by: { $0.item.utf8.lexicographicallyPrecedes($1.item.utf8) }) {
            try body(try Self.itemState(r, model: model, version: version, dimension: dimension))
        }
    }

    public func loadItemState(model: String, version: Int, item: String, dimension: Int) throws -> StoredItemState? {
        try state.withLock { $0.items[Key(model: model, version: version)]?[item] }
            .map { try Self.itemState($0, model: model, version: version, dimension: dimension) }
    }

    private static func itemState(_ r: ItemStateRow, model: String, version: Int, dimension: Int) throws -> StoredItemState {
        let ridge = try Self.ridge(r.state, "item_state", model: model, version: version, key: "item \(r.item)", dimension: dimension)
        return StoredItemState(item: r.item, ridge: ridge, observations: r.observations, seq: r.seq)
    }

    public func restoreInterruptedSnapshot(model: String, version: Int) throws -> Int {
        let key = Key(model: model, version: version)
        return state.withLock { s in
            var restored = 0
            for (k, kept) in s.kept.removeValue(forKey: key) ?? [:] {
                switch kept {
                case .user(let row?): s.rows[key, default: [:]][k.key] = row; restored += 1
                case .item(let row?): s.items[key, default: [:]][k.key] = row; restored += 1
                case .user(nil): if s.rows[key]?.removeValue(forKey: k.key) != nil { restored += 1 }
                case .item(nil): if s.items[key]?.removeValue(forKey: k.key) != nil { restored += 1 }
                }
            }
            return restored
        }
    }

    public func saveObservedItems(model: String, _ items: [ObservedItem]) throws {
        state.withLock { s in for i in items { s.observed[model, default: [:]][i.uid, default: []].insert(i.item) } }
    }

    public func observedItems(model: String, uid: String) throws -> [String] {
        state.withLock { Array($0.observed[model]?[uid] ?? []) }
    }

    public func advanceSnapshot(model: String, version: Int, to seq: Int64) throws {
        let key = Key(model: model, version: version)
        state.withLock { s in
            if let old = s.seq[key], old < seq { s.seq[key] = seq }
            s.kept[key] = nil
        }
    }

    public func loadSnapshot(model: String, version: Int, dimension: Int) throws -> UserSnapshot {
        let (seq, rows) = try stored(model: model, version: version)
        var users: [String: UserWeights] = [:]
        var ahead: [String: Int64] = [:]
        for r in rows.values {
            users[r.uid] = try Self.weights(r, model: model, version: version, dimension: dimension)
            if r.seq > seq { ahead[r.uid] = r.seq }
        }
        return UserSnapshot(seq: seq, users: users, ahead: ahead)
    }

    public func snapshotSequence(model: String, version: Int) throws -> Int64 {
        try stored(model: model, version: version).seq
    }

    public func forEachStoredWeights(model: String, version: Int, dimension: Int, _ body: (StoredWeights) throws -> Void) throws {
        let rows = state.withLock { $0.rows[Key(model: model, version: version)] ?? [:] }
        for r in rows.values {
            guard r.weights.count == dimension else {
                throw Self.corrupt(r, "user_weights", model: model, version: version,
                                   "its weights are \(r.weights.count) values, not \(dimension) (the version's dimension)")
            }
            try body(StoredWeights(uid: r.uid, weights: r.weights, observations: r.observations, runningLoss: r.runningLoss,
                                   bootstrapped: r.bootstrapped, seq: r.seq))
        }
    }

    public func loadUserState(model: String, version: Int, uid: String, dimension: Int) throws -> (weights: UserWeights, seq: Int64)? {
        guard let r = state.withLock({ $0.rows[Key(model: model, version: version)]?[uid] }) else { return nil }
        return (try Self.weights(r, model: model, version: version, dimension: dimension), r.seq)
    }

    public func userCount(model: String, version: Int) throws -> Int {
        state.withLock { $0.rows[Key(model: model, version: version)]?.count ?? 0 }
    }

    public func saveHotUsers(model: String, version: Int, _ uids: [String]) throws {
        state.withLock { $0.hot[Key(model: model, version: version)] = Array(Set(uids)).sorted() }
    }

    public func hotUsers(model: String, version: Int) throws -> [String] {
        state.withLock { $0.hot[Key(model: model, version: version)] ?? [] }
    }

    public func deleteVersion(model: String, version: Int, limit: Int) throws -> Int {
        precondition(limit > 0, "a version is deleted at least one row at a time")
        let key = Key(model: model, version: version)
        return state.withLock { s in
            var deleted = 0
            func take<V>(_ table: inout [Key: V], count: (V) -> Int, drop: (inout V, Int) -> Void) {
                guard deleted < limit, var rows = table[key] else { return }
                let n = min(count(rows), limit - deleted)
                drop(&rows, n)
                deleted += n
                table[key] = count(rows) == 0 ? nil : rows
            }
            take(&s.rows, count: \.count) { rows, n in for k in rows.keys.prefix(n) { rows[k] = nil } }
            take(&s.items, count: \.count) { rows, n in for k in rows.keys.prefix(n) { rows[k] = nil } }
            take(&s.kept, count: \.count) { rows, n in for k in rows.keys.prefix(n) { rows[k] = nil } }
            take(&s.hot, count: \.count) { rows, n in rows.removeFirst(n) }
            if deleted == 0, s.seq.removeValue(forKey: key) != nil { deleted = 1 }
            return deleted
        }
    }

    public func storedVersions(model: String) throws -> [Int] {
        state.withLock { s in
            let keys = [Array(s.rows.keys), Array(s.items.keys), Array(s.kept.keys), Array(s.seq.keys), Array(s.hot.keys)].joined()
            return Set(keys.filter { $0.model == model }.map(\.version)).sorted()
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        state.withLock { s in
            var erased = 0
            for key in s.rows.keys where key.model == model {
                if s.rows[key]?.removeValue(forKey: uid) != nil { erased += 1 }
            }
            for key in s.kept.keys where key.model == model { s.kept[key]?[KeptKey(isItem: false, key: uid)] = nil }
            for key in s.hot.keys where key.model == model {
                let before = s.hot[key]!.count
                s.hot[key]!.removeAll { $0 == uid }
                erased += before - s.hot[key]!.count
            }
            erased += s.observed[model]?.removeValue(forKey: uid)?.count ?? 0
            return erased
        }
    }

    private func stored(model: String, version: Int) throws -> (seq: Int64, rows: [String: SnapshotRow]) {
        let key = Key(model: model, version: version)
        guard let found = state.withLock({ s in s.seq[key].map { ($0, s.rows[key] ?? [:]) } }) else {
            throw StorageError(.notFound, "model \(model) has no stored user weights for version \(version)")
        }
        return found
    }

    /// A row's full state, checked as the SQLite store checks it.
    private static func weights(_ r: SnapshotRow, model: String, version: Int, dimension: Int) throws -> UserWeights {
        let ridge = try ridge(r.state, "user_ridge", model: model, version: version, key: "uid \(r.uid)", dimension: dimension)
        return UserWeights(ridge: ridge, observations: r.observations, runningLoss: r.runningLoss, bootstrapped: r.bootstrapped)
    }

    /// A serialized state of a row named by `key` ("uid u1", "item i1"), checked as the SQLite store checks it.
    private static func ridge(_ state: [UInt8], _ table: String, model: String, version: Int, key: String, dimension: Int) throws -> RidgeState {
        let ridge: RidgeState
        do { ridge = try RidgeState(serialized: state) } catch {
            throw corrupt(table, model: model, version: version, key, "its state is unreadable (\(error))")
        }
        guard ridge.dimension == dimension else {
            throw corrupt(table, model: model, version: version, key, "its state has dimension \(ridge.dimension), the version's is \(dimension)")
        }
        return ridge
    }

    private static func corrupt(_ r: SnapshotRow, _ table: String, model: String, version: Int, _ problem: String) -> StorageError {
        corrupt(table, model: model, version: version, "uid \(r.uid)", problem)
    }

    private static func corrupt(_ table: String, model: String, version: Int, _ key: String, _ problem: String) -> StorageError {
        StorageError(.corrupt, "snapshot row \(table) (model \(model), version \(version), \(key)) is corrupt: \(problem)")
    }
}
