import Foundation
import OspreyMath

/// The blobs of a snapshot row, as every snapshot store writes and reads them: a full ridge state
/// is `RidgeState.serialized()` ("RDG3"), a compact `w_u` is its `dimension` Float32 values in
/// memory order (``Float32Blob``). Decoding checks the version's dimension: a row that does not
/// decode, or holds a state or weights of another dimension, throws ``StorageError`` `.corrupt`
/// naming the row instead of reaching the engine (whose user store requires the version's
/// dimension).
struct SnapshotRowKey {
    var table: String
    var model: String
    var version: Int
    var uid: String
    /// "uid" for a user's row, "item" for an item's.
    var keyName = "uid"

    func corrupt(_ problem: String) -> StorageError {
        StorageError(.corrupt, "snapshot row \(table) (model \(model), version \(version), \(keyName) \(uid)) is corrupt: \(problem)")
    }

    /// The full ridge state in a state blob. O(d²).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    func ridgeState(_ blob: Data, dimension: Int) throws -> RidgeState {
        let ridge: RidgeState
        do { ridge = try RidgeState(serialized: blob) } catch { throw corrupt("its state is unreadable (\(error))") }
        guard ridge.dimension == dimension else {
            throw corrupt("its state has dimension \(ridge.dimension), the version's is \(dimension)")
        }
        return ridge
    }

    /// A user's `w_u` in a weights blob: exactly `dimension` Float32 values. O(d).
    /// - Throws: ``StorageError`` `.corrupt` naming the row.
    func weights(_ blob: Data, dimension: Int) throws -> [Float] {
        guard blob.count == dimension * MemoryLayout<Float>.size else {
            throw corrupt("its weights are \(blob.count) bytes, not \(dimension) Float32 values (the version's dimension)")
        }
        return Float32Blob.floats(blob)
    }
}

/// Float32 values as a blob: their bytes in memory order (little-endian on every platform the
/// stores run on).
enum Float32Blob {
    /// The blob of `floats`. O(n).
    static func data(_ floats: [Float]) -> Data {
        floats.withUnsafeBytes { Data($0) }
    }

    /// The Float32 values of a blob written by ``data(_:)``. O(n).
    static func floats(_ data: Data) -> [Float] {
        var out = [Float](repeating: 0, count: data.count / MemoryLayout<Float>.size)
        out.withUnsafeMutableBytes { _ = data.copyBytes(to: $0) }
        return out
    }
}
