import Foundation
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// Storage failures injected through the fault-injecting stores: the engine reports them, keeps
/// what it acknowledged and what it serves, and recovers when the store does.
struct FaultInjectionTests {
    @Test func theNthCallOfAKindFailsAndNoOther() throws {
        let faults = Faults()
        let stores = Stores.inMemory().injectingFaults(faults)
        faults.failNext(.commit, nth: 2)
        let observation = Observation(model: "m", uid: "u", item: "i", label: 1)
        _ = try stores.log.append([observation])
        #expect(throws: StorageError.self) { try stores.log.append([observation]) }
        _ = try stores.log.append([observation])
        #expect(try stores.log.lastSequence() == 2, "the failed commit appended nothing")
        #expect(faults.calls(.commit) == 3 && faults.calls(.logRead) == 1)
        faults.failAll(.snapshotRead)
        #expect(throws: StorageError.self) { try stores.snapshots.hotUsers(model: "m", version: 1) }
        #expect(throws: StorageError.self) { try stores.snapshots.hotUsers(model: "m", version: 1) }
        faults.heal(.snapshotRead)
        #expect(try stores.snapshots.hotUsers(model: "m", version: 1).isEmpty)
    }

    /// Every observe of a failed commit gets `unavailable` and nothing of it is learned; reads
    /// keep serving; once the log commits again, so do observes.
    @Test func aFailedCommitIsUnavailableAndLearnsNothing() async throws {
        let t = try TrainedStore()
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid
        let before = try m.info(model: "demo", uid: uid), score = try p.predict(model: "demo", uid: uid, item: "i1")
        faults.failAll(.commit)
        let outcomes = await withTaskGroup(of: OspreyError.Code?.self) { group in
            for n in 0..<8 {
                group.addTask {
                    do { try await m.observe(model: "demo", [(uid, "i\(n)", 5)]); return nil } catch let e as OspreyError { return e.code } catch { return nil }
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.allSatisfy { $0 == .unavailable }, "\(outcomes)")
        #expect(try m.info(model: "demo", uid: uid) == before)
        #expect(try p.predict(model: "demo", uid: uid, item: "i1") == score, "reads keep serving")
        #expect(try m.registry.model("demo").observations == 0 && t.stores.log.lastSequence() == 0)
        faults.heal(.commit)
        try await m.observe(model: "demo", [(uid, "i1", 5)])
        #expect(try m.info(model: "demo", uid: uid).observations == before.observations + 1)
    }

    /// A failed snapshot write is counted and leaves its users changed, so the next snapshot
    /// saves them; a restart then restores what was learned.
    @Test func aFailedSnapshotIsRetriedWhole() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), metrics: metrics.engine, logger: quiet)
        try await m.observe(model: "demo", (0..<30).map { ("u\($0 % 10)", "i\($0 % 7)", Float($0 % 5)) })
        faults.failNext(.snapshotWrite, nth: 2)
        #expect(throws: StorageError.self) { try m.snapshotter.snapshot() }
        #expect(metrics.count("osprey_snapshot_failures_total") == 1 && metrics.count("osprey_snapshots_total") == 0)
        #expect(metrics.gauge("osprey_snapshot_in_progress") == 0)
        #expect(try m.snapshotter.snapshot() == 10, "every changed user, the failed chunk's too")
        #expect(metrics.count("osprey_snapshots_total") == 1 && metrics.count("osprey_snapshot_users_total") == 10)
        let restarted = try Manager(stores: t.stores, logger: quiet)
        for u in 0..<10 { #expect(try restarted.info(model: "demo", uid: "u\(u)") == m.info(model: "demo", uid: "u\(u)")) }
        #expect(try t.stores.snapshots.snapshotSequence(model: "demo", version: 1) == t.stores.log.lastSequence())
    }

    /// A retrain that swapped in its version is done even when pruning old versions fails
    /// afterwards; the versions left are pruned by a later retrain.
    @Test func aFailedPruneAfterTheSwapLeavesTheRetrainDone() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: .init(keepVersions: 1), metrics: metrics.engine,
                            logger: quiet)
        #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        // Version 3's retrain writes the catalogue three times: the version, serving it, then the
        // prune of version 1 (version 2 is its parent).
        faults.failNext(.versionWrite, nth: 3)
        let job = try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.phase == .done && job.version == 3, "\(job)")
        #expect(metrics.count("osprey_retrain_failures_total") == 0)
        #expect(try m.info(model: "demo").version == 3 && metrics.gauge("osprey_model_version", model: "demo") == 3)
        #expect(try t.stores.versions.versions(model: "demo").map(\.number) == [1, 2, 3], "the prune failed")
        #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        #expect(try t.stores.versions.versions(model: "demo").map(\.number) == [3, 4])
    }

    /// A snapshot under way when its state is swapped out lets that state go at its next chunk,
    /// writing no more of it, so a replaced version's users are not held beside the new one's;
    /// what it left unwritten is the log's, and serving that version again is exact.
    @Test(arguments: [false, true])
    func aSnapshotLetsGoOfAVersionSwappedOut(itemUpdates: Bool) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: .init(itemUpdates: itemUpdates), logger: quiet)
        #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        let uids = (0..<30).map { "u\($0)" }
        try await m.observe(model: "demo", uids.enumerated().map { ($1, "i\($0 % 7)", Float($0 % 5)) })
        let model = try m.registry.model("demo")
        let learned = try uids.map { try m.info(model: "demo", uid: $0) }
        let p = Predictor(registry: m.registry)
        _ = model.current.publishItems()  // the item rows as learned, as a load publishes them
        let scores = try uids.map { try p.predict(model: "demo", uid: $0, item: "i3") }
        let rows = try uids.map { try t.stores.snapshots.loadUserState(model: "demo", version: 2, uid: $0, dimension: model.version.dimension)?.seq }
        // Version 1, loaded before the snapshot starts (its load may write the snapshot store).
        let (previous, replayed) = try m.loader.load(model: "demo", version: 1, through: m.progress.sequence, continuing: .init(model))
        weak let swappedOut = model.current
        faults.hold(.snapshotWrite)
        let writes = faults.calls(.snapshotWrite)
        let snapshot = Task { try await m.snapshotter.snapshotInBackground() }  // its own thread: it blocks
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(2)) }
        try m.installer.install(previous, in: model, caughtUpThrough: replayed)
        faults.release(.snapshotWrite)
        #expect(try await snapshot.value == 0, "nothing saved of a state swapped out before its first chunk")
        #expect(swappedOut == nil, "the snapshot let version 2's state go")
        let after = try uids.map { try t.stores.snapshots.loadUserState(model: "demo", version: 2, uid: $0, dimension: model.version.dimension)?.seq }
        #expect(after == rows, "no row of version 2 written after the swap")
        try await m.installer.rollback(model: "demo", to: 2)
        #expect(try uids.map { try m.info(model: "demo", uid: $0) } == learned)
        #expect(try uids.map { try p.predict(model: "demo", uid: $0, item: "i3") } == scores)
    }
}
