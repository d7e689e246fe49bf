import Dispatch
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// `exclude_observed` answers, which the prediction cache keeps per user epoch, never miss an
/// item the user observed: not while a snapshot records it, not while the user learns it.
struct ObservedItemsTests {
    /// An item of the trained catalogue that `uid` never rated.
    func unrated(by uid: String, in t: TrainedStore) -> String {
        let rated = Set(t.ratings.filter { $0.uid == uid }.map(\.item))
        return Set(t.ratings.map(\.item)).subtracting(rated).sorted().first!
    }

    /// While a snapshot writes the items users observed, they are still excluded (from memory),
    /// and afterwards from the store.
    @Test func itemsBeingRecordedByASnapshotStayExcluded() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid, item = unrated(by: uid, in: t)
        let all = Set(t.ratings.map(\.item)).count
        try await m.observe(model: "demo", [(uid, item, 5)])
        func shown() throws -> [String] { try p.topK(model: "demo", uid: uid, k: all, items: nil, excludeObserved: true).items.map(\.item) }

        faults.hold(.snapshotWrite)
        let writes = faults.calls(.snapshotWrite)
        // On a thread of its own: a held write must not block a thread of the concurrency pool.
        let snapshot = Task { try await m.snapshotter.snapshotInBackground() }
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(1)) }
        // The snapshot has taken the pending items and waits in its first write. The answer
        // computed now is cached for the user's epoch, and served again after the snapshot.
        #expect(try !shown().contains(item), "an item being recorded is still excluded")
        faults.release(.snapshotWrite)
        _ = try await snapshot.value
        #expect(try m.registry.model("demo").current.observed.inMemory(of: uid).isEmpty, "recorded, so dropped from memory")
        #expect(try !shown().contains(item), "the cached answer, and after it one read from the store")
    }

    /// A failed write makes the items pending again: still excluded, and recorded by the next
    /// snapshot.
    @Test func itemsOfAFailedWriteArePendingAgain() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let uid = t.ratings[0].uid, item = unrated(by: uid, in: t)
        try await m.observe(model: "demo", [(uid, item, 5)])
        faults.failNext(.snapshotWrite)
        #expect(throws: StorageError.self) { try m.snapshotter.snapshot() }
        let observed = try m.registry.model("demo").current.observed
        #expect(observed.inMemory(of: uid) == [item])
        try m.snapshotter.snapshot()
        #expect(try observed.inMemory(of: uid).isEmpty && t.stores.snapshots.observedItems(model: "demo", uid: uid).contains(item))
    }

    /// Learning records the item before the user's epoch moves: while a cold user's state is
    /// rebuilt (inside the update that counts the observation), the item is already recorded.
    @Test func theItemIsRecordedBeforeTheEpochMoves() throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, logger: quiet)
        let version = try m.registry.model("demo").current.version
        let entered = DispatchSemaphore(value: 0), proceed = DispatchSemaphore(value: 0)
        let users = UserWeightStore(stride: version.features.stride, hotUsers: 0, rebuild: { _, _ in
            entered.signal()
            proceed.wait()
            return UserWeights(ridge: .init(prior: version.prior, lambda: version.lambda), bootstrapped: false)
        })
        users.insertCold(StoredWeights(uid: "u", weights: version.prior, observations: 0, runningLoss: nil, bootstrapped: false, seq: 0))
        let state = ServingState(version: version, users: users)
        let item = version.features.catalog.ids[0]
        let learned = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            _ = try? state.learn(LoggedObservation(seq: 1, observation: Observation(model: "demo", uid: "u", item: item, label: 4)))
            learned.signal()
        }
        entered.wait()
        // (The user's stripe is locked by the update, so its count cannot be read until it ends.)
        #expect(state.observed.inMemory(of: "u") == [item], "recorded before the update counts the observation")
        proceed.signal()
        learned.wait()
        users.read("u") { #expect($0?.observations == 1) }
    }
}
