import Logging
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// The engine's background work runs as services, and a graceful shutdown stops every one.
struct ServicesTests {
    @Test func aGracefulShutdownStopsEveryService() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, logger: quiet)
        #expect(m.services.count == 6)
        let uid = t.ratings[0].uid
        try await m.withServices(logger: quiet) {
            try await m.observe(model: "demo", [(uid, "i1", 5)])
            _ = try m.explorer.topK(model: "demo", uid: uid, k: 3, items: nil)
        }
        // The ingestor takes no more observations.
        await #expect(throws: OspreyError.self) { try await m.observe(model: "demo", [(uid, "i2", 4)]) }
        // The snapshotter saved the changed user; the decision log wrote its buffer.
        #expect(try t.stores.snapshots.snapshotSequence(model: "demo", version: 1) == 1)
        #expect(try t.stores.decisions.decisionCount(model: "demo") == 1)
        // The read-ahead pool runs later work on the caller's thread.
        let ran = Mutex<Bool>(false)
        m.readAhead.submit { ran.withLock { $0 = true } }
        #expect(ran.withLock { $0 }, "run at once, inline")
    }

    @Test func aStoppedPoolEndsItsThreads() async throws {
        let pool = WorkerPool(name: "test-pool", threads: 3, idleTimeout: .seconds(60))
        let done = Atomic<Int>(0)
        for _ in 0..<6 { pool.submit { done.add(1, ordering: .relaxed) } }
        while done.load(ordering: .relaxed) < 6 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(pool.liveThreads > 0)
        pool.stop()
        let deadline = ContinuousClock.now + .seconds(10)
        while pool.liveThreads > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(pool.liveThreads == 0, "idle threads end at once, not after their 60 s timeout")
    }
}

extension ServicesTests {
    /// A failed snapshot is retried after a backoff, not after another full interval of
    /// observations, and counted.
    @Test func aFailedSnapshotIsRetriedWithoutWaitingForMoreObservations() async throws {
        let t = try TrainedStore(), faults = Faults(), metrics = RecordedMetrics()
        let m = try Manager(stores: t.stores.injectingFaults(faults),
                            configuration: .init(snapshotObservations: 20, snapshotCheckInterval: .milliseconds(10)),
                            metrics: metrics.engine, logger: quiet)
        faults.failNext(.snapshotWrite)
        let service = Task { try await m.snapshotter.run() }
        defer { service.cancel() }
        try await m.observe(model: "demo", (0..<20).map { ("u\($0 % 5)", "i\($0)", 4) })
        // Generous: with the whole suite running on two cores, the service's task may wait for a
        // thread of the concurrency pool while other suites block theirs on PostgreSQL (seen at
        // 30 s). A bound, not a timing claim: a retry that never comes still fails.
        let deadline = ContinuousClock.now + .seconds(120)
        while metrics.count("osprey_snapshots_total") == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(metrics.count("osprey_snapshot_failures_total") == 1)
        #expect(metrics.count("osprey_snapshots_total") == 1, "retried with no new observation")
        #expect(try t.stores.snapshots.snapshotSequence(model: "demo", version: 1) == 20)
    }

    /// A replaced state freed late (by a reader that held it past the swap) still gets its memory
    /// handed back, once, when it is freed; a state held past the patience gives up, trimming nothing.
    @Test func memoryIsHandedBackOnceAReplacedStateIsFreed() async throws {
        final class Held: Sendable {}
        var held: Held? = Held()
        let gone = WeakReference(object: held), trims = Atomic<Int>(0), waited = Mutex<Duration??>(nil)
        ProcessMemory.returnFreed(when: { gone.object == nil }, interval: .milliseconds(5), patience: .seconds(60),
                                  trim: { trims.add(1, ordering: .relaxed) }, done: { w in waited.withLock { $0 = .some(w) } })
        try await Task.sleep(for: .milliseconds(100))
        #expect(trims.load(ordering: .relaxed) == 0 && waited.withLock { $0 } == nil, "nothing while it is held")
        held = nil
        let deadline = ContinuousClock.now + .seconds(10)
        while waited.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(trims.load(ordering: .relaxed) == 1)
        #expect(try #require(waited.withLock { $0 }) != nil)

        let kept = Held(), keptRef = WeakReference(object: kept), gaveUp = Mutex<Duration??>(nil)
        ProcessMemory.returnFreed(when: { keptRef.object == nil }, interval: .milliseconds(5), patience: .milliseconds(50),
                                  trim: { trims.add(1, ordering: .relaxed) }, done: { w in gaveUp.withLock { $0 = .some(w) } })
        while gaveUp.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(try #require(gaveUp.withLock { $0 }) == nil, "it gave up")
        #expect(trims.load(ordering: .relaxed) == 1)
        withExtendedLifetime(kept) {}
    }
}
