import Foundation
import GRDB
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// A snapshot row that does not fit its version (a state or weights of another dimension, a cut
/// blob) is a `.corrupt` error naming the row, written here with GRDB as a damaged or foreign
/// file would have it; the engine never receives it.
struct SnapshotRowTests {
    static let dimension = 5  // TrainedStore's d = 4, plus the bias

    func withCorruptRow(_ table: String, _ blob: Data, _ body: (SQLiteSnapshotStore, String) throws -> Void) throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let uid = try t.sqlite!.snapshots.loadSnapshot(model: "demo", version: 1, dimension: Self.dimension).users.keys.sorted()[0]
        let column = table == "user_ridge" ? "state" : "weights"
        try t.sqlite!.snapshots.database.pool.write { db in
            try db.execute(sql: "UPDATE \(table) SET \(column) = ? WHERE model = 'demo' AND version = 1 AND uid = ?", arguments: [blob, uid])
            #expect(db.changesCount == 1)
        }
        try body(try #require(try t.reopenSQLite()).snapshots, uid)
    }

    func expectCorrupt(_ uid: String, _ table: String, saying problem: String, _ load: () throws -> Void) {
        let error = #expect(throws: StorageError.self) { try load() }
        #expect(error?.code == .corrupt)
        #expect(error?.message.contains("snapshot row \(table) (model demo, version 1, uid \(uid)) is corrupt: \(problem)") == true,
                "\(error?.message ?? "")")
    }

    static func state(dimension d: Int) -> Data {
        Data(RidgeState(prior: [Float](repeating: 0.5, count: d), lambda: 1).serialized())
    }

    @Test func aFullStateOfAnotherDimensionNamesItsRow() throws {
        try withCorruptRow("user_ridge", Self.state(dimension: 3)) { snapshots, uid in
            let problem = "its state has dimension 3, the version's is 5"
            expectCorrupt(uid, "user_ridge", saying: problem) { _ = try snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5) }
            expectCorrupt(uid, "user_ridge", saying: problem) { _ = try snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5) }
        }
    }

    @Test func aCutFullStateNamesItsRow() throws {
        try withCorruptRow("user_ridge", Self.state(dimension: 5).dropLast(3)) { snapshots, uid in
            let problem = "its state is unreadable (ridge state truncated"
            expectCorrupt(uid, "user_ridge", saying: problem) { _ = try snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5) }
            expectCorrupt(uid, "user_ridge", saying: problem) { _ = try snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5) }
        }
    }

    /// The compact row must be exactly d Float32 values: 3 values, or 5 and two stray bytes
    /// (which a count of whole floats would let through), are refused.
    @Test(arguments: [12, 22])
    func compactWeightsOfAnotherSizeNameTheirRow(bytes: Int) throws {
        try withCorruptRow("user_weights", Data(repeating: 0, count: bytes)) { snapshots, uid in
            expectCorrupt(uid, "user_weights", saying: "its weights are \(bytes) bytes, not 5 Float32 values") {
                try snapshots.forEachStoredWeights(model: "demo", version: 1, dimension: 5) { _ in }
            }
        }
    }
}
