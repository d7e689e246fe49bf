import Foundation
import GRDB
import OspreyMath

/// Decoding a snapshot row's SQLite value: a blob, decoded and checked against the version's
/// dimension as every snapshot store does (``SnapshotRowKey``); a value that is no blob is
/// `.corrupt` too.
extension SQLiteSnapshotStore {
    /// A user's full ridge state from a `user_ridge` blob. O(d²).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    static func ridgeState(_ value: DatabaseValue, _ key: SnapshotRowKey, dimension: Int) throws -> RidgeState {
        guard let blob = Data.fromDatabaseValue(value) else { throw key.corrupt("its state is not a blob") }
        return try key.ridgeState(blob, dimension: dimension)
    }

    /// A user's `w_u` from a `user_weights` blob: exactly `dimension` Float32 values. O(d).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    static func weights(_ value: DatabaseValue, _ key: SnapshotRowKey, dimension: Int) throws -> [Float] {
        guard let blob = Data.fromDatabaseValue(value) else { throw key.corrupt("its weights are not a blob") }
        return try key.weights(blob, dimension: dimension)
    }
}
