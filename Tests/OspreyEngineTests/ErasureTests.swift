import Foundation
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// A user's erasure (docs/operations.md, "Erasing a user"): nothing of the user is left in the
/// stores or in memory, a restart or a retrain does not bring it back, and a snapshot under way
/// cannot write it back.
struct ErasureTests {
    /// Everything the stores hold of `uid` in model `demo`.
    func traces(of uid: String, in stores: Stores) throws -> [String] {
        var out: [String] = []
        let dimension = try stores.versions.loadVersion(model: "demo", number: 1).dimension
        try stores.log.forEachObservation(model: "demo", after: 0) { if $0.observation.uid == uid { out.append("log \($0.seq)") } }
        for v in try stores.versions.versions(model: "demo").map(\.number)
        where try stores.snapshots.loadUserState(model: "demo", version: v, uid: uid, dimension: dimension) != nil {
            out.append("snapshot of version \(v)")
        }
        out += try stores.snapshots.observedItems(model: "demo", uid: uid).map { "observed \($0)" }
        out += try stores.versions.initialRatings(model: "demo").filter { $0.uid == uid }.map { "rating \($0.item)" }
        out += try stores.decisions.decisions(model: "demo", limit: 1_000).filter { $0.uid == uid }.map { "decision \($0.eventId)" }
        return out
    }

    @Test(arguments: TrainedStore.Backend.durable)

    func anErasedUserIsGoneFromStoresMemoryRestartsAndRetrains(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: t.stores, logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid, rated = t.ratings.filter { $0.uid == uid }.count
        try await m.observe(model: "demo", [(uid, "i1", 5), (uid, "i2", 1), ("other", "i1", 3)])
        _ = try m.explorer.topK(model: "demo", uid: uid, k: 3, items: nil)
        await m.decisions.flushed()
        try m.snapshotter.snapshot()
        try await m.observe(model: "demo", [(uid, "i3", 4)])  // learned, not yet snapshotted
        let cached = try p.topK(model: "demo", uid: uid, k: 5, items: nil, excludeObserved: true)
        #expect(try !traces(of: uid, in: t.stores).isEmpty)

        let erased = try m.eraseUser(model: "demo", uid: uid)
        #expect(erased.observations == 3 && erased.trainingRatings == rated && erased.decisions == 1)
        #expect(erased.snapshotRows >= 1 + 2, "the state, the observed items")
        #expect(try traces(of: uid, in: t.stores) == [])
        #expect(try m.eraseUser(model: "demo", uid: uid) == UserErasure(observations: 0, snapshotRows: 0, decisions: 0, trainingRatings: 0))

        // Served as a user never seen, cached answers included.
        func sameAsStranger(_ m: Manager) throws {
            let p = Predictor(registry: m.registry)
            #expect(try m.info(model: "demo", uid: uid) == UserInfo(uid: uid, observations: 0, runningLoss: nil, bootstrapped: true))
            #expect(try p.predict(model: "demo", uid: uid, item: "i1").score == p.predict(model: "demo", uid: "stranger", item: "i1").score)
            let mine = try p.topK(model: "demo", uid: uid, k: 5, items: nil, excludeObserved: true)
            let theirs = try p.topK(model: "demo", uid: "stranger", k: 5, items: nil, excludeObserved: true)
            #expect(mine.items.map(\.item) == theirs.items.map(\.item) && mine.items.map(\.score) == theirs.items.map(\.score))
        }
        try sameAsStranger(m)
        #expect(cached.items.map(\.item) != (try p.topK(model: "demo", uid: uid, k: 5, items: nil, excludeObserved: true)).items.map(\.item))
        #expect(try m.info(model: "demo").observations == 1, "only the other user's observation is counted")

        // A snapshot and a restart do not bring the user back.
        try m.snapshotter.snapshot()
        #expect(try traces(of: uid, in: t.stores) == [])
        let restarted = try Manager(stores: try t.reopen(), logger: quiet)
        try sameAsStranger(restarted)

        // A retrain gathers neither the log's nor the training ratings' data of the user.
        let id = try restarted.retrainer.start(model: "demo")
        let job = try await restarted.retrainer.wait(forJob: id, model: "demo")
        #expect(job.version == 2 && job.error == nil)
        #expect(try traces(of: uid, in: t.reopen()) == [], "version 2 holds no state of the user")
        #expect(try t.reopen().snapshots.userCount(model: "demo", version: 2) > 0)

        // Learning again starts from the prior.
        try await restarted.observe(model: "demo", [(uid, "i4", 2)])
        #expect(try restarted.info(model: "demo", uid: uid).observations == 1 && restarted.info(model: "demo", uid: uid).bootstrapped)
    }

    @Test func anErasureWaitsForASnapshotWritingTheUser() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let uid = t.ratings[0].uid
        try await m.observe(model: "demo", [(uid, "i1", 5), (uid, "i2", 1)])
        // The snapshot has taken the user's state and items and waits to write them.
        // (Counted from here: with items learning online, the start already wrote their states.)
        let writes = faults.calls(.snapshotWrite)
        faults.hold(.snapshotWrite)
        // Both on threads of their own (they block), not on the small concurrency pool.
        let snapshot = Task { try await m.snapshotter.snapshotInBackground() }
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(5)) }
        let erasure = Task { try await m.eraseUserInBackground(model: "demo", uid: uid) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try t.stores.log.observationCount(model: "demo") == 2, "the erasure has not begun while the snapshot writes")
        faults.release(.snapshotWrite)
        _ = try await snapshot.value
        let erased = try await erasure.value
        #expect(erased.observations == 2)
        #expect(try traces(of: uid, in: t.stores) == [], "nothing the snapshot took was written after the erasure")
        try m.snapshotter.snapshot()
        #expect(try traces(of: uid, in: t.stores) == [])
    }

    /// A retrain that read the user's training ratings before the erasure finished trains again
    /// without them: the version it stores and serves holds nothing of the user.
    @Test func aRetrainThatGatheredAnErasedUserTrainsAgainWithoutThem() async throws {
        let t = try TrainedStore(), faults = Faults()
        defer { t.remove() }
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let uid = t.ratings[0].uid
        try await m.observe(model: "demo", [(uid, "i1", 5), ("other", "i2", 1)])
        // The retrain has read the training ratings, the user's among them, and waits to read the log.
        let reads = faults.calls(.logRead)
        faults.hold(.logRead)
        let id = try m.retrainer.start(model: "demo")
        while faults.calls(.logRead) == reads { try await Task.sleep(for: .milliseconds(5)) }
        let erased = try await m.eraseUserInBackground(model: "demo", uid: uid)
        #expect(erased.trainingRatings > 0 && erased.observations == 1)
        faults.release(.logRead)
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .done && job.version == 2, "\(job)")
        #expect(try traces(of: uid, in: t.stores) == [], "version 2 was trained again, without the user")
    }

    /// An erasure waits while a retrain stores and swaps in its version, then erases the user
    /// from that version too.
    @Test func anErasureWaitsForARetrainStoringItsVersion() async throws {
        let t = try TrainedStore(), faults = Faults()
        defer { t.remove() }
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let uid = t.ratings[0].uid
        try await m.observe(model: "demo", [(uid, "i1", 5)])
        let writes = faults.calls(.snapshotWrite)
        faults.hold(.snapshotWrite)
        let id = try m.retrainer.start(model: "demo")
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(5)) }
        let erasure = Task { try await m.eraseUserInBackground(model: "demo", uid: uid) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try t.stores.log.observationCount(model: "demo") == 1, "the erasure has not begun while the retrain stores")
        faults.release(.snapshotWrite)
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .done && job.version == 2, "\(job)")
        #expect(try await erasure.value.observations == 1)
        #expect(try traces(of: uid, in: t.stores) == [], "the user is erased from version 2 too")
    }

    /// Users only: the user and its twin must learn against the same item rows.
    @Test func noCachedAnswerOutlivesTheErasure() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: .init(itemUpdates: false), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid, batch: [(String, Float)] = [("i1", 5), ("i2", 1), ("i3", 4)]
        try await m.observe(model: "demo", batch.map { (uid, $0.0, $0.1) })
        _ = try p.topK(model: "demo", uid: uid, k: 5, items: nil, excludeObserved: true)  // cached at epoch 3
        _ = try m.eraseUser(model: "demo", uid: uid)
        // The same observations again bring the user back to epoch 3, as a new user this time.
        try await m.observe(model: "demo", batch.map { (uid, $0.0, $0.1) } + batch.map { ("twin", $0.0, $0.1) })
        let mine = try p.topK(model: "demo", uid: uid, k: 5, items: nil, excludeObserved: true)
        let twins = try p.topK(model: "demo", uid: "twin", k: 5, items: nil, excludeObserved: true)
        #expect(mine.items.map(\.item) == twins.items.map(\.item) && mine.items.map(\.score) == twins.items.map(\.score))
    }

    @Test func aFailedErasureIsUnavailableAndARetryFinishesIt() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let uid = t.ratings[0].uid
        try await m.observe(model: "demo", [(uid, "i1", 5), (uid, "i2", 1)])
        faults.failNext(.snapshotWrite)
        do {
            _ = try m.eraseUser(model: "demo", uid: uid)
            Issue.record("the erasure succeeded through a failing store")
        } catch let e as OspreyError {
            #expect(e.code == .unavailable)
        }
        #expect(try t.stores.log.observationCount(model: "demo") == 0, "the log, erased first, stays erased")
        #expect(try m.info(model: "demo", uid: uid).observations == 2, "memory is left as it was")
        let erased = try m.eraseUser(model: "demo", uid: uid)
        #expect(erased.observations == 0 && erased.trainingRatings > 0)
        #expect(try traces(of: uid, in: t.stores) == [] && m.info(model: "demo", uid: uid).observations == 0)
    }
}
