import Foundation
import GRDB
import OspreyMath

/// Decoding a snapshot row's blob, checked against the version's dimension: a row that does not
/// decode, or holds a state or weights of another dimension, throws ``StorageError`` `.corrupt`
/// naming the row instead of reaching the engine (whose user store requires the version's
/// dimension).
extension SQLiteSnapshotStore {
    /// A user's full ridge state from a `user_ridge` blob. O(d²).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    static func ridgeState(_ value: DatabaseValue, _ key: SnapshotRowKey, dimension: Int) throws -> RidgeState {
        guard let blob = Data.fromDatabaseValue(value) else { throw key.corrupt("its state is not a blob") }
        let ridge: RidgeState
        do { ridge = try RidgeState(serialized: blob) } catch { throw key.corrupt("its state is unreadable (\(error))") }
        guard ridge.dimension == dimension else {
            throw key.corrupt("its state has dimension \(ridge.dimension), the version's is \(dimension)")
        }
        return ridge
    }

    /// A user's `w_u` from a `user_weights` blob: exactly `dimension` Float32 values. O(d).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    static func weights(_ value: DatabaseValue, _ key: SnapshotRowKey, dimension: Int) throws -> [Float] {
        guard let blob = Data.fromDatabaseValue(value) else { throw key.corrupt("its weights are not a blob") }
        guard blob.count == dimension * MemoryLayout<Float>.size else {
            throw key.corrupt("its weights are \(blob.count) bytes, not \(dimension) Float32 values (the version's dimension)")
        }
        return SQLiteDatabase.floats(blob)
    }
}

/// Which snapshot row: its table, model, version and user (or item: `keyName` "item").
struct SnapshotRowKey {
    var table: String
    var model: String
    var version: Int
    var uid: String
    var keyName = "uid"

    func corrupt(_ problem: String) -> StorageError {
        StorageError(.corrupt, "snapshot row \(table) (model \(model), version \(version), \(keyName) \(uid)) is corrupt: \(problem)")
    }
}
