import Foundation
import GRDB
import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// A start (or a cold user's rebuild) on a snapshot row of another dimension fails with the
/// store's error naming the row, never a crash in the user store (whose rows have the model's
/// stride: a state of dimension 9 would not fit the stride of 5).
struct CorruptSnapshotRowTests {
    func withForeignRow(_ body: (TrainedStore, String) throws -> Void) throws {
        let t = try TrainedStore(backend: .sqlite)
        defer { t.remove() }
        let uid = "u1"
        let foreign = UserWeights(ridge: RidgeState(prior: [Float](repeating: 0.5, count: 9), lambda: 1), observations: 1,
                                  runningLoss: nil, bootstrapped: false)
        try t.sqlite!.snapshots.database.pool.write { db in
            try db.execute(sql: "UPDATE user_ridge SET state = ? WHERE model = 'demo' AND version = 1 AND uid = ?",
                           arguments: [Data(foreign.ridge.serialized()), uid])
            #expect(db.changesCount == 1)
        }
        try body(t, uid)
    }

    static let row = "snapshot row user_ridge (model demo, version 1, uid u1) is corrupt: its state has dimension 9, the version's is 5"

    @Test func anUntieredStartNamesTheRow() throws {
        try withForeignRow { t, _ in
            let error = #expect(throws: StorageError.self) { try Manager(stores: try t.reopen(), configuration: .init(hotUsers: .max), logger: quiet) }
            #expect(error?.code == .corrupt && error?.message == Self.row, "\(String(describing: error))")
        }
    }

    @Test func aColdUsersRebuildNamesTheRow() throws {
        try withForeignRow { t, uid in
            let m = try Manager(stores: try t.reopen(), configuration: .init(hotUsers: 4), logger: quiet)
            let users = try m.registry.model("demo").current.users
            let error = #expect(throws: StorageError.self) { try users.fullState(uid) }
            #expect(error?.code == .corrupt && error?.message == Self.row, "\(String(describing: error))")
        }
    }
}
