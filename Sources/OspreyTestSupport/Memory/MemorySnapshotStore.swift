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

    private struct State {
        var rows: [Key: [String: SnapshotRow]] = [:]
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
            s.seq[key] = nil
        }
        try rows { chunk in state.withLock { s in for r in chunk { s.rows[key, default: [:]][r.uid] = r } } }
        state.withLock { $0.seq[key] = seq }
    }

    public func saveSnapshot(model: String, version: Int, rows: [SnapshotRow], observedItems: [ObservedItem]) throws {
        let key = Key(model: model, version: version)
        state.withLock { s in
            for r in rows { s.rows[key, default: [:]][r.uid] = r }
            for i in observedItems { s.observed[model, default: [:]][i.uid, default: []].insert(i.item) }
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

    public func deleteUsers(model: String, versions: [Int]) throws {
        state.withLock { s in
            for v in versions {
                let key = Key(model: model, version: v)
                s.rows[key] = nil
                s.seq[key] = nil
                s.hot[key] = nil
            }
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        state.withLock { s in
            var erased = 0
            for key in s.rows.keys where key.model == model {
                if s.rows[key]?.removeValue(forKey: uid) != nil { erased += 1 }
            }
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
        let ridge: RidgeState
        do { ridge = try RidgeState(serialized: r.state) } catch {
            throw corrupt(r, "user_ridge", model: model, version: version, "its state is unreadable (\(error))")
        }
        guard ridge.dimension == dimension else {
            throw corrupt(r, "user_ridge", model: model, version: version, "its state has dimension \(ridge.dimension), the version's is \(dimension)")
        }
        return UserWeights(ridge: ridge, observations: r.observations, runningLoss: r.runningLoss, bootstrapped: r.bootstrapped)
    }

    private static func corrupt(_ r: SnapshotRow, _ table: String, model: String, version: Int, _ problem: String) -> StorageError {
        StorageError(.corrupt, "snapshot row \(table) (model \(model), version \(version), uid \(r.uid)) is corrupt: \(problem)")
    }
}
