import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine
@testable import OspreyStorage

/// Retraining, swapping and rolling back versions.
struct VersionTests {
    /// Every user's state in `a` equals a fresh restore from the store (snapshot + log replay),
    /// and so do its answers once `m` has published the item rows it learned (a fresh start
    /// publishes what its replay learned).
    func expectSameAsFreshStart(_ m: Manager, _ t: TrainedStore, uids: [String], items: [String]) throws {
        m.itemPublisher.publish()
        let fresh = try Manager(stores: try t.reopen(), logger: quiet)
        let p = Predictor(registry: m.registry), q = Predictor(registry: fresh.registry)
        #expect(try fresh.registry.model("demo").version.number == m.registry.model("demo").version.number)
        for uid in uids {
            #expect(try fresh.info(model: "demo", uid: uid) == m.info(model: "demo", uid: uid), "\(uid)")
            for item in items {
                #expect(try q.predict(model: "demo", uid: uid, item: item) == p.predict(model: "demo", uid: uid, item: item))
            }
        }
    }

    @Test(arguments: TrainedStore.Backend.available)

    func retrainSwapsInANewVersionWithoutLosingObservations(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        for n in 0..<40 { try await m.observe(model: "demo", [("u\(n % 8)", "new-item", 4), ("u\(n % 8)", "i\(n % 5)", 2)]) }
        let id = try m.retrainer.start(model: "demo")
        #expect(throws: OspreyError.self) { try m.retrainer.start(model: "demo") }
        // Keep observing while the retrain runs: these must reach the new version too.
        var during = 0
        while !(try m.retrainer.job(id, model: "demo").finished) || during < 5 {
            try await m.observe(model: "demo", [("u\(during % 8)", "i\(during % 7)", Float(during % 5))])
            during += 1
        }
        let job = try m.retrainer.job(id, model: "demo")
        #expect(job.phase == .done && job.version == 2 && job.error == nil)
        let info = try m.info(model: "demo")
        #expect(info.version == 2)
        #expect(info.versions.map(\.status) == [.retired, .serving])
        #expect(info.versions[1].parent == 1 && info.versions[1].metadata.trainedThroughSeq != nil)
        // The retrain learned the item that only the log knew.
        #expect(try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "new-item").version == 2)
        for u in 0..<8 {
            #expect(try m.info(model: "demo", uid: "u\(u)").observations == 10 + (0..<during).filter { $0 % 8 == u }.count)
        }
        try expectSameAsFreshStart(m, t, uids: (0..<8).map { "u\($0)" }, items: ["i1", "i3", "new-item"])
    }

    /// The catch-up before a swap learns the log in rounds, without the learning lock, while
    /// observations keep arriving: whatever the rounds, every observation is learned once, in
    /// order, so the caught-up state equals the one that learned them live.
    @Test(arguments: TrainedStore.Backend.available)
    func theCatchUpBeforeASwapLearnsEveryObservationOnce(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let model = try m.registry.model("demo")
        for n in 0..<30 { try await m.observe(model: "demo", [("u\(n % 8)", "i\(n % 5)", Float(n % 5))]) }
        // Version 1 as stored: it has learned nothing of the log yet.
        let (state, _) = try Loader(stores: m.stores, configuration: m.configuration)
            .load(model: "demo", version: 1, through: 0, continuing: .init(model))
        let stream = Task {
            for n in 0..<400 {
                try await m.observe(model: "demo", [("u\(n % 8)", "i\(n % 7)", Float(n % 5)), ("u\((n + 3) % 8)", "i\(n % 3)", 1)])
            }
        }
        let total = m.progress.sequence + 800
        var caught: Int64 = 0, rounds = 0
        while m.progress.sequence < total {
            let before = m.progress.sequence
            caught = try m.installer.catchUp(state, after: caught, lockedTail: 0)
            #expect(caught >= before, "a catch-up reaches at least what was learned when it began")
            rounds += 1
            try await Task.sleep(for: .milliseconds(1))
        }
        try await stream.value
        caught = try m.installer.catchUp(state, after: caught, lockedTail: 0)
        #expect(caught == m.progress.sequence && rounds >= 2, "\(rounds) rounds while observations arrived")
        for u in 0..<8 {
            #expect(try state.users.fullState("u\(u)") == model.current.users.fullState("u\(u)"), "u\(u)")
        }
    }

    @Test(arguments: TrainedStore.Backend.available)

    func rollbackServesTheOldVersionWithEverythingLearnedSince(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let p = Predictor(registry: m.registry)
        try await m.observe(model: "demo", [("u1", "i1", 5), ("u2", "i2", 1)])
        let id = try m.retrainer.start(model: "demo")
        _ = try await m.retrainer.wait(forJob: id, model: "demo")
        try await m.observe(model: "demo", [("u1", "i3", 5), ("u9", "i4", 2)])
        try m.snapshotter.snapshot()
        try await m.installer.rollback(model: "demo", to: 1)
        #expect(try p.predict(model: "demo", uid: "u1", item: "i1").version == 1)
        #expect(try m.info(model: "demo", uid: "u1").observations == 2)
        #expect(try m.info(model: "demo").versions.map(\.status) == [.serving, .retired])
        try expectSameAsFreshStart(m, t, uids: ["u1", "u2", "u9", "u5"], items: ["i1", "i3"])
        // And forward again.
        try await m.installer.rollback(model: "demo", to: 2)
        try expectSameAsFreshStart(m, t, uids: ["u1", "u2", "u9", "u5"], items: ["i1", "i3"])
        await #expect(throws: OspreyError.self) { try await m.installer.rollback(model: "demo", to: 7) }
    }

    /// A retrain keeps a λ given at training, and searches near one chosen by validation,
    /// reporting its fits in the job.
    @Test(arguments: [Float(1), nil])
    func aRetrainKeepsAGivenLambdaAndSearchesNearAChosenOne(lambda: Float?) async throws {
        let t = try TrainedStore(lambda: lambda)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let parent = try t.stores.versions.loadVersion(model: "demo", number: 1).metadata
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.phase == .done, "\(job)")
        let child = try t.reopen().versions.loadVersion(model: "demo", number: 2).metadata
        if lambda != nil {
            #expect(job.lambdaFits == 0)
            #expect(child.lambda == parent.lambda && child.lambdaSelection == "given")
        } else {
            #expect((3...6).contains(job.lambdaFits), "\(job)")
            #expect(child.lambdaSelection.contains("near the parent's"), "\(child.lambdaSelection)")
        }
    }

    @Test func aFailedRetrainLeavesServingUntouched() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), metrics: metrics.engine, logger: quiet)
        let before = try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1")
        // The retrain cannot read the ratings it trains on.
        faults.failAll(.versionRead)
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        faults.heal(.versionRead)
        #expect(job.phase == .failed && job.error?.contains("injected fault") == true, "\(job)")
        #expect(metrics.count("osprey_retrain_failures_total") == 1)
        #expect(try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1") == before)
        #expect(try m.info(model: "demo").versions.count == 1)
        #expect(throws: OspreyError.self) { try m.retrainer.job(99, model: "demo") }
    }
}

extension VersionTests {
    @Test func aCancelledRetrainLeavesServingUntouched() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics(), faults = Faults()
        defer { t.remove() }
        let m = try Manager(stores: t.stores.injectingFaults(faults), metrics: metrics.engine, logger: quiet)
        let before = try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1")
        // The job waits in its gather step (a held catalogue read) until the cancel is in.
        faults.hold(.versionRead)
        let id = try m.retrainer.start(model: "demo")
        #expect(try m.retrainer.cancel(job: id, model: "demo").cancelRequested)
        faults.release(.versionRead)
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .cancelled && job.version == nil && job.finished)
        #expect(metrics.count("osprey_retrain_cancellations_total") == 1 && metrics.count("osprey_retrain_failures_total") == 0)
        #expect(try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1") == before)
        #expect(try m.info(model: "demo").versions.map(\.number) == [1])
        #expect(throws: OspreyError.self) { try m.retrainer.cancel(job: id, model: "demo") }   // finished
        #expect(throws: OspreyError.self) { try m.retrainer.cancel(job: 42, model: "demo") }   // unknown
        // The model can be retrained again afterwards.
        #expect(try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo").phase == .done)
    }

    /// A process stopped while installing a version leaves it `built`; the next start marks it
    /// `failed` and serves the old one.
    @Test(arguments: TrainedStore.Backend.available)
    func aVersionNeverServedIsMarkedFailedAtTheNextStart(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let v1 = try t.stores.versions.loadVersion(model: "demo", number: 1)
        let v2 = ModelVersion(model: "demo", number: 2, createdAt: v1.createdAt, features: v1.features, lambda: v1.lambda,
                              prior: v1.prior, metadata: v1.metadata, parent: 1)
        try t.stores.createVersion(v2, users: [], reflecting: 0, trainingRatings: [], serve: false)
        #expect(try t.stores.versions.versions(model: "demo").map(\.status) == [.serving, .built])
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        #expect(try m.info(model: "demo").versions.map(\.status) == [.serving, .failed])
        #expect(try m.registry.model("demo").version.number == 1)
    }
}

extension VersionTests {
    /// With a retrain window, the stand-ins of users' past tastes shape the items but are not
    /// served, and a new user's prior is the mean of the real users only.
    @Test func aWindowedRetrainServesRealUsersOnly() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(retrainWindow: 5), logger: quiet)
        let id = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        let state = try m.registry.model("demo").current
        let uids = Set(t.ratings.map(\.uid))
        #expect(state.users.count == uids.count, "no stand-in is served")
        let weights = try uids.compactMap { uid in try state.users.fullState(uid)?.ridge }
        let mean = Trainer.meanWeights(weights, dimension: state.version.dimension)
        #expect(zip(mean, state.version.prior).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(try t.stores.versions.loadVersion(model: "demo", number: 2).prior == state.version.prior)
    }
}

struct RetentionTests {
    /// Keep the newest K versions; never the serving one or its parent, even after a rollback.
    @Test(arguments: TrainedStore.Backend.available)
    func prunesOldVersionsButNeverServingOrItsParent(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(keepVersions: 2), logger: quiet)
        func retrain() async throws { _ = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo") }
        try await retrain()  // v2
        try await retrain()  // v3: v1 is pruned (not serving, not v3's parent)
        #expect(try m.info(model: "demo").versions.map(\.number) == [2, 3])
        try await m.installer.rollback(model: "demo", to: 2)
        try await retrain()  // v4, parent v2: keeps 3 and 4, and 2 as the parent
        #expect(try m.info(model: "demo").versions.map(\.number) == [2, 3, 4])
        await #expect(throws: OspreyError.self) { try await m.installer.rollback(model: "demo", to: 1) }
        #expect(try t.stores.snapshots.userCount(model: "demo", version: 1) == 0)
    }

    /// A prune cut short after its catalogue write leaves the version's rows; the next prune
    /// deletes them, and leaves a version newer than the catalogue's (a retrain storing it).
    @Test(arguments: TrainedStore.Backend.available)
    func aPruneCutShortIsFinishedByTheNext(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend), faults = Faults()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        for _ in 0..<2 { _ = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo") }
        let stores = t.stores, faulty = stores.injectingFaults(faults)
        faults.failNext(.snapshotWrite)
        #expect(throws: (any Error).self) { try faulty.pruneVersions(model: "demo", keep: 1) }
        #expect(try stores.versions.versions(model: "demo").map(\.number) == [2, 3], "version 1 left the catalogue")
        #expect(try stores.snapshots.storedVersions(model: "demo") == [1, 2, 3] && stores.snapshots.userCount(model: "demo", version: 1) > 0)
        try stores.snapshots.saveHotUsers(model: "demo", version: 4, ["u1"])  // a retrain's version, not yet catalogued
        #expect(try faulty.pruneVersions(model: "demo", keep: 1) == [1])
        #expect(try stores.snapshots.storedVersions(model: "demo") == [2, 3, 4])
        #expect(try stores.snapshots.userCount(model: "demo", version: 1) == 0)
    }

    @Test func aRetrainWindowMovesOlderRatingsToStandInsInSlices() {
        // u1 has 50 ratings (timestamps 1…50, stored out of order), u2 has 3.
        let u1 = (1...50).reversed().map { Rating(uid: "u1", item: "i\($0)", label: 1, timestamp: Double($0)) }
        let u2 = (1...3).map { Rating(uid: "u2", item: "i\($0)", label: 2, timestamp: Double($0)) }
        let out = RetrainRun.windowed(20, perUserOf: u1 + u2)
        #expect(out.map(\.item) == (u1 + u2).map(\.item), "order and items kept")
        func owner(_ t: Int) -> String { out.first { $0.uid.hasSuffix("u1") && $0.timestamp == Double(t) }!.uid }
        #expect((31...50).allSatisfy { owner($0) == "u1" }, "the latest 20 stay the user's")
        #expect((11...30).allSatisfy { owner($0) == RetrainRun.pastPrefix + "1\u{0}u1" })
        #expect((1...10).allSatisfy { owner($0) == RetrainRun.pastPrefix + "2\u{0}u1" })
        #expect(out.suffix(3).allSatisfy { $0.uid == "u2" })
    }
}

extension VersionTests {
    /// A rollback made while a retrain runs wins: the retrain's version is stored, marked failed
    /// and not served, and the job says why.
    /// Users only: with items learning online a rollback writes the items' states too, which
    /// the held snapshot writes would hold as well.
    @Test func aRollbackDuringARetrainIsNotUndone() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: .init(itemUpdates: false), logger: quiet)
        #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        #expect(try m.registry.model("demo").version.number == 2)
        // The next retrain (from version 2) waits in its store step while version 1 is rolled back to.
        faults.hold(.snapshotWrite)
        let writes = faults.calls(.snapshotWrite)
        let id = try m.retrainer.start(model: "demo")
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(1)) }
        try await m.installer.rollback(model: "demo", to: 1)
        faults.release(.snapshotWrite)
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .failed && job.error?.contains("rollback") == true, "\(job)")
        #expect(try m.registry.model("demo").version.number == 1, "the rollback stands")
        #expect(try t.stores.versions.versions(model: "demo").map(\.status) == [.serving, .retired, .failed])
    }
}
