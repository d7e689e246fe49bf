import Foundation
import Logging
import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

struct ManagerTests {
    func open(_ t: TrainedStore, itemUpdates: Bool = false) throws -> (Manager, Predictor) {
        let m = try Manager(stores: try t.reopen(), configuration: .init(itemUpdates: itemUpdates), logger: quiet)
        return (m, Predictor(registry: m.registry))
    }

    /// With items learning too, the prequential error is still scored before anything learns.
    @Test(arguments: [false, true])
    func observationIsLearnedBeforeTheAcknowledgement(itemUpdates: Bool) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let (m, p) = try open(t, itemUpdates: itemUpdates)
        let uid = t.ratings[0].uid, item = "i1"
        let before = try p.predict(model: "demo", uid: uid, item: item).score
        let version = try await m.observe(model: "demo", [(uid, item, before + 3)])
        #expect(version == 1)
        let after = try p.predict(model: "demo", uid: uid, item: item).score
        #expect(after > before, "a label above the prediction pulls it up")
        let info = try m.info(model: "demo", uid: uid)
        #expect(info.observations == 1 && !info.bootstrapped)
        #expect(info.runningLoss.map { abs($0 - 9) < 1e-3 } == true, "first prequential loss is (3)²")
        #expect(try t.stores.log.observationCount(model: "demo") == 1)
    }

    @Test func newUsersStartFromTheMeanWeights() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let (m, p) = try open(t)
        let v = try m.registry.model("demo").version
        let expected = (v.prior + [Float](repeating: 0, count: v.features.stride - v.dimension)).withUnsafeBufferPointer {
            v.features.score(weights: $0.baseAddress!, item: v.features.catalog.row(of: "i2")!)
        }
        #expect(try p.predict(model: "demo", uid: "stranger", item: "i2").score == expected)
        #expect(try m.info(model: "demo", uid: "stranger") == UserInfo(uid: "stranger", observations: 0, runningLoss: nil, bootstrapped: true))
        try await m.observe(model: "demo", [("stranger", "i2", 5)])
        let info = try m.info(model: "demo", uid: "stranger")
        #expect(info.bootstrapped && info.observations == 1)
        // One observation moves the weights but the prior keeps the prediction between the two.
        let moved = try p.predict(model: "demo", uid: "stranger", item: "i2").score
        #expect(moved > expected && moved < 5)
    }

    /// With item updates off (with them on, the item joins the catalogue: ItemLearningTests).
    @Test(arguments: TrainedStore.Backend.available)
    func unknownItemIsLoggedButCannotMoveWeights(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(itemUpdates: false), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid
        let before = try p.predict(model: "demo", uid: uid, item: "i1")
        try await m.observe(model: "demo", [(uid, "brand-new-item", 4)])
        #expect(try p.predict(model: "demo", uid: uid, item: "i1") == before)
        #expect(try m.info(model: "demo", uid: uid).observations == 1)
        #expect(try t.stores.log.observationCount(model: "demo") == 1)
        #expect(throws: OspreyError.self) { try p.predict(model: "demo", uid: uid, item: "brand-new-item") }
    }

    @Test func badInputIsRejectedAndChangesNothing() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let (m, _) = try open(t)
        let cases: [(String, [(uid: String, item: String, label: Float)], OspreyError.Code)] = [
            ("demo", [("u1", "i1", .nan)], .invalidArgument),
            ("demo", [("u1", "i1", .infinity)], .invalidArgument),
            ("demo", [("", "i1", 1)], .invalidArgument),
            ("demo", [("u1", "", 1)], .invalidArgument),
            ("demo", [("u1", String(repeating: "x", count: 300), 1)], .invalidArgument),
            ("demo", [("u1", "i1", 1), ("u2", "i1", .nan)], .invalidArgument),
            ("nope", [("u1", "i1", 1)], .unknownModel),
        ]
        for (model, batch, code) in cases {
            await #expect(throws: OspreyError.self) { try await m.observe(model: model, batch) }
            do { try await m.observe(model: model, batch) } catch let e as OspreyError { #expect(e.code == code) }
        }
        #expect(try t.stores.log.observationCount(model: "demo") == 0)
        #expect(try m.info(model: "demo", uid: "u1").observations == 0)
    }

    /// A label beyond ±`maxAbsLabel` (1e6 by default, exact on the Double sent) is refused with
    /// the field and the limit, before anything is logged or learned; in a batch, the message
    /// names the observation and nothing of the batch is logged.
    @Test(arguments: [nil, 10.0] as [Double?])
    func labelsOutsideTheConfiguredRangeAreRefused(limit: Double?) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: limit.map { .init(maxAbsLabel: $0) } ?? .init(), logger: quiet)
        let max = limit ?? 1_000_000
        let text = limit == nil ? "1000000" : "10"
        func refusal(_ batch: [Feedback]) async -> OspreyError? {
            do { try await m.observe(model: "demo", batch) } catch let e as OspreyError { return e } catch { return nil }
            return nil
        }
        for bad in [max.nextUp, -max.nextUp, max * 2, .infinity, .nan] {
            let e = await refusal([Feedback(uid: "u1", item: "i1", label: bad)])
            #expect(e?.code == .invalidArgument, "\(bad)")
            #expect(e?.message.hasPrefix("label must be a number from -\(text) to \(text), got ") == true, "\(e?.message ?? "")")
        }
        let batch = [Feedback(uid: "u1", item: "i1", label: 1), Feedback(uid: "u2", item: "i1", label: max),
                     Feedback(uid: "u3", item: "i1", label: -max * 3)]
        let e = await refusal(batch)
        #expect(e?.message == "observation 2: label must be a number from -\(text) to \(text), got -\(limit == nil ? "3000000" : "30")")
        #expect(try t.stores.log.observationCount(model: "demo") == 0)
        #expect(try m.info(model: "demo", uid: "u1").observations == 0)
        // At the limits, accepted and stored as given.
        try await m.observe(model: "demo", [Feedback(uid: "u1", item: "i1", label: max), Feedback(uid: "u1", item: "i2", label: -max)])
        let logged = try t.stores.log.observations(model: "demo", after: 0, limit: 10).map(\.observation.label)
        #expect(logged == [Float(max), Float(-max)])
    }

    @Test(arguments: [false, true])
    func restartRestoresEveryUserExactly(itemUpdates: Bool) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        var rng = SplitMix64(seed: 12)
        func randomBatch() -> [(uid: String, item: String, label: Float)] {
            (0..<20).map { _ in ("u\(rng.next() % 70)", "i\(rng.next() % 45)", Float(rng.nextUniform() * 5)) }
        }
        let (m, p) = try open(t, itemUpdates: itemUpdates)
        for _ in 0..<10 { try await m.observe(model: "demo", randomBatch()) }
        try m.snapshotter.snapshot()
        for _ in 0..<10 { try await m.observe(model: "demo", randomBatch()) }
        // Items learn online too: the live answers read the rows once published.
        m.itemPublisher.publish()
        // No shutdown: the second half is only in the log, as after a kill.
        let (m2, p2) = try open(t, itemUpdates: itemUpdates)
        let items = try m.registry.model("demo").version.features.catalog.ids
        for u in 0..<70 {
            let uid = "u\(u)"
            #expect(try m2.info(model: "demo", uid: uid) == m.info(model: "demo", uid: uid))
            for item in items {
                #expect(try p2.predict(model: "demo", uid: uid, item: item) == p.predict(model: "demo", uid: uid, item: item))
            }
        }
        #expect(try m2.registry.model("demo").observations == 400)
    }

    /// Snapshots run on a background thread of their own at a lower priority (Linux keeps a
    /// nice value per thread); the caller's priority is untouched, and results and errors come
    /// back. The snapshot through it saves what changed.
    @Test func snapshotsRunOnALowerPriorityThread() async throws {
        struct Failure: Error {}
        let callerNice = BackgroundThread.currentNice()
        let (nice, name) = try await BackgroundThread.run(name: "osprey-test") { (BackgroundThread.currentNice(), BackgroundThread.currentThreadName()) }
        #if os(Linux)
        #expect(nice == min(19, (callerNice ?? 0) + BackgroundThread.nice), "nice \(String(describing: nice))")
        #endif
        #expect(name == "osprey-test")
        #expect(BackgroundThread.currentNice() == callerNice)
        await #expect(throws: Failure.self) { try await BackgroundThread.run(name: "osprey-test") { () throws -> Int in throw Failure() } }

        let t = try TrainedStore()
        defer { t.remove() }
        let (m, _) = try open(t)
        try await m.observe(model: "demo", [("u1", "i1", 4), ("u2", "i2", 3)])
        #expect(try await m.snapshotter.snapshotInBackground() == 2)
        #expect(try await m.snapshotter.snapshotInBackground() == 0)
    }

    @Test func bulkIngestGivesTheSameWeightsAsSingleObserves() async throws {
        let a = try TrainedStore(), b = try TrainedStore()
        defer { a.remove(); b.remove() }
        let (ma, pa) = try open(a)
        let (mb, pb) = try open(b)
        let batch: [(uid: String, item: String, label: Float)] = (0..<50).map { ("u\($0 % 7)", "i\($0 % 11)", Float($0 % 5)) }
        for o in batch { try await ma.observe(model: "demo", [o]) }
        try await mb.observe(model: "demo", batch)
        for u in 0..<7 {
            #expect(try pa.predict(model: "demo", uid: "u\(u)", item: "i3") == pb.predict(model: "demo", uid: "u\(u)", item: "i3"))
        }
    }

    /// Observes that arrive while a commit is under way wait for it, then share one commit.
    @Test func concurrentObservesShareCommits() async throws {
        let t = try TrainedStore(), faults = Faults(), metrics = RecordedMetrics()
        let m = try Manager(stores: t.stores.injectingFaults(faults), metrics: metrics.engine, logger: quiet)
        faults.hold(.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await m.observe(model: "demo", [("c0", "i0", 3)]) }
            while faults.calls(.commit) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            // The first commit is under way (held): the other 199 queue behind it.
            for n in 1..<200 {
                group.addTask { try await m.observe(model: "demo", [("c\(n % 10)", "i\(n % 30)", 3)]) }
            }
            while m.ingestor.waitingCount < 199 { try await Task.sleep(for: .milliseconds(1)) }
            faults.release(.commit)
            try await group.waitForAll()
        }
        #expect(try t.stores.log.observationCount(model: "demo") == 200)
        #expect(faults.calls(.commit) == 2 && metrics.count("osprey_group_commits_total") == 2,
                "the first observe's commit, then one for the 199 that waited")
        #expect(metrics.count("osprey_observations_total", model: "demo") == 200)
        for n in 0..<10 { #expect(try m.info(model: "demo", uid: "c\(n)").observations == 20) }
    }

    /// An observe waits for the log's commit and for the learning of its batch; each is timed
    /// apart, so a slow disk and a held learning lock show in different histograms.
    @Test func commitAndLearningAreTimedApart() async throws {
        let t = try TrainedStore(), faults = Faults(), metrics = RecordedMetrics()
        let m = try Manager(stores: t.stores.injectingFaults(faults), metrics: metrics.engine, logger: quiet)
        @Sendable func values(_ label: String) -> [Int64] { metrics.factory.timers(label: label).flatMap(\.values) }
        @Sendable func commits() -> [Int64] { values("osprey_log_commit_duration_seconds") }
        func learning() -> [Int64] { values("osprey_learning_duration_seconds") }
        let held: Int64 = 300_000_000

        // A slow commit: held for 300 ms.
        faults.hold(.commit)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await m.observe(model: "demo", [("u1", "i1", 3)]) }
            while faults.calls(.commit) == 0 { try await Task.sleep(for: .milliseconds(1)) }
            try await Task.sleep(for: .nanoseconds(held))
            faults.release(.commit)
            try await group.waitForAll()
        }
        #expect(commits().count == 1 && learning().count == 1)
        #expect(commits()[0] >= held && learning()[0] < held, "the held commit is the commit's time, not the learning's")

        // A held learning lock: the next observe commits, then waits 300 ms more to learn.
        let locked = Atomic(false)
        let holder = Thread {
            m.progress.applied.withLock { _ in
                locked.store(true, ordering: .releasing)
                let deadline = Date().addingTimeInterval(30)
                while commits().count < 2, Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
                Thread.sleep(forTimeInterval: Double(held) / 1e9)
            }
        }
        holder.start()
        while !locked.load(ordering: .acquiring) { try await Task.sleep(for: .milliseconds(1)) }
        try await m.observe(model: "demo", [("u2", "i2", 4)])
        #expect(commits().count == 2 && learning().count == 2)
        #expect(learning()[1] >= held && commits()[1] < held, "the wait for the learning lock is the learning's time")
    }

    @Test func topKMatchesAFullSortOfPredictions() throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let (m, p) = try open(t)
        let ids = try m.registry.model("demo").version.features.catalog.ids
        let uid = t.ratings[3].uid
        let all = try ids.map { ($0, try p.predict(model: "demo", uid: uid, item: $0).score) }
        let reference = all.enumerated().sorted { ($0.element.1, -$0.offset) > ($1.element.1, -$1.offset) }.prefix(5).map(\.element.0)
        #expect(try p.topK(model: "demo", uid: uid, k: 5, items: nil).items.map(\.item) == reference)
        let subset = Array(ids.prefix(10)) + [ids[0]]
        let subsetReference = all.prefix(10).enumerated().sorted { ($0.element.1, -$0.offset) > ($1.element.1, -$1.offset) }.prefix(3).map(\.element.0)
        #expect(try p.topK(model: "demo", uid: uid, k: 3, items: subset).items.map(\.item) == subsetReference)
        #expect(throws: OspreyError.self) { try p.topK(model: "demo", uid: uid, k: 0, items: nil) }
        #expect(throws: OspreyError.self) { try p.topK(model: "demo", uid: uid, k: 3, items: ["i1", "missing"]) }
    }
}

/// A snapshot cut short by a crash (rows written, the version's sequence not yet advanced)
/// still restores exactly: each row's own sequence keeps replay from applying twice.
struct PartialSnapshotTests {
    /// Users only: it writes half the users' rows by hand. With items learning online a snapshot
    /// is one cut of users and items, and one cut short is put back at the next start
    /// (ItemLearningTests).
    @Test(arguments: TrainedStore.Backend.available)
    func partiallyWrittenSnapshotRestoresExactly(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(itemUpdates: false), logger: quiet)
        let p = Predictor(registry: m.registry)
        for n in 0..<60 { try await m.observe(model: "demo", [("u\(n % 12)", "i\(n % 9)", Float(n % 5))]) }
        let model = try m.registry.model("demo").current
        let changed = model.users.takeChanged()
        let last = try t.stores.log.lastSequence()
        // Only half of the changed users reach the store, and the snapshot's floor stays where it was.
        let rows = changed.prefix(changed.count / 2).map { uid in
            model.users.readHot(uid) { SnapshotRow(uid: uid, weights: $0!, seq: last) }
        }
        try t.stores.snapshots.saveSnapshot(model: "demo", version: 1, rows: rows)
        #expect(try t.stores.snapshots.snapshotSequence(model: "demo", version: 1) == 0, "the floor is the trained version's")
        for n in 0..<30 { try await m.observe(model: "demo", [("u\(n % 12)", "i\(n % 7)", 2)]) }
        let restored = try Manager(stores: try t.reopen(), configuration: .init(itemUpdates: false), logger: quiet)
        let q = Predictor(registry: restored.registry)
        for u in 0..<12 {
            #expect(try restored.info(model: "demo", uid: "u\(u)") == m.info(model: "demo", uid: "u\(u)"))
            #expect(try q.predict(model: "demo", uid: "u\(u)", item: "i4") == p.predict(model: "demo", uid: "u\(u)", item: "i4"))
        }
    }
}

/// Top-k filters: an explicit exclude list, and the items the user has rated or observed.
struct TopKFilterTests {
    @Test(arguments: TrainedStore.Backend.available)
    func excludesListedAndObservedItems(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid
        let ids = try m.registry.model("demo").version.features.catalog.ids
        try await m.observe(model: "demo", [(uid, ids[0], 5)])
        let rated = Set(t.ratings.filter { $0.uid == uid }.map(\.item)).union([ids[0]])
        let all = try ids.map { ($0, try p.predict(model: "demo", uid: uid, item: $0).score) }
        func reference(without skip: Set<String>, k: Int) -> [String] {
            all.enumerated().filter { !skip.contains($0.element.0) }
                .sorted { ($0.element.1, -$0.offset) > ($1.element.1, -$1.offset) }.prefix(k).map(\.element.0)
        }
        let observed = try p.topK(model: "demo", uid: uid, k: 8, items: nil, excludeObserved: true).items.map(\.item)
        #expect(observed == reference(without: rated, k: 8))
        let top3 = try p.topK(model: "demo", uid: uid, k: 3, items: nil).items.map(\.item)
        let listed = try p.topK(model: "demo", uid: uid, k: 3, items: nil, exclude: top3 + ["no-such-item"]).items.map(\.item)
        #expect(listed == reference(without: Set(top3), k: 3))
        let candidates = try p.topK(model: "demo", uid: uid, k: 5, items: Array(ids.prefix(6)), exclude: [ids[1]], excludeObserved: true)
        #expect(!candidates.items.contains { rated.contains($0.item) || $0.item == ids[1] })
        // Excluding everything leaves nothing, not an error.
        #expect(try p.topK(model: "demo", uid: uid, k: 3, items: nil, exclude: ids).items.isEmpty)
        // After a restart the observed items are rebuilt from the training data and the log.
        let restarted = Predictor(registry: try Manager(stores: try t.reopen(), logger: quiet).registry)
        #expect(try restarted.topK(model: "demo", uid: uid, k: 8, items: nil, excludeObserved: true).items.map(\.item) == observed)
    }
}

extension ManagerTests {
    /// An observation id makes a retry harmless: acknowledged, not logged or learned twice — after
    /// a failed commit (it was not logged, so the retry is), behind the first in the same group
    /// commit, and after a restart.
    @Test func aRetriedObservationIdIsAcknowledgedOnce() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        func send(_ id: String, label: Double = 4) async throws -> Acknowledgement {
            try await m.acknowledge(model: "demo", [Feedback(uid: "retry-user", item: "i1", label: label, observationId: id)])
        }
        func learned() throws -> Int { try m.info(model: "demo", uid: "retry-user").observations }
        // A failed commit logs nothing: its retry is the first delivery.
        faults.failNext(.commit)
        await #expect(throws: OspreyError.self) { try await send("a") }
        #expect(try await send("a").duplicates == 0 && learned() == 1)
        #expect(try await send("a").duplicates == 1 && learned() == 1, "a retry after a timeout")
        // Two deliveries in one group commit: one is logged.
        faults.hold(.commit)
        let calls = faults.calls(.commit)
        async let blocker = send("b")
        while faults.calls(.commit) == calls { try await Task.sleep(for: .milliseconds(1)) }
        async let first = send("c"), second = send("c")
        while m.ingestor.waitingCount < 2 { try await Task.sleep(for: .milliseconds(1)) }
        faults.release(.commit)
        let answers = try await [blocker.duplicates, first.duplicates, second.duplicates]
        #expect(try answers.sorted() == [0, 0, 1] && learned() == 3)
        #expect(try t.stores.log.observationCount(model: "demo") == 3)
        // A bulk call counts its duplicates; a restart still knows the ids.
        let restarted = try Manager(stores: t.stores, logger: quiet)
        let bulk = try await restarted.acknowledge(model: "demo", [
            Feedback(uid: "retry-user", item: "i2", label: 3, observationId: "a"),
            Feedback(uid: "retry-user", item: "i2", label: 3, observationId: "d"),
        ])
        #expect(try bulk.duplicates == 1 && restarted.info(model: "demo", uid: "retry-user").observations == 4)
    }
}
