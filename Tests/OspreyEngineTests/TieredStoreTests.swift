import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// Tiered user state: a tiny hot tier, which evicts and rebuilds users all the time, gives the
/// same bits as keeping every user's full state in memory.
struct TieredStoreTests {
    func open(_ t: TrainedStore, hotUsers: Int, metrics: RecordedMetrics = .init(), itemUpdates: Bool = false) throws -> (Manager, Predictor) {
        let m = try Manager(stores: try t.reopen(), configuration: .init(hotUsers: hotUsers, itemUpdates: itemUpdates), metrics: metrics.engine,
                            logger: quiet)
        return (m, Predictor(registry: m.registry))
    }

    /// The same random observations, with snapshots between rounds (so users turn clean and are
    /// evicted, then rebuilt when they learn again), into an untiered store and tiered ones.
    @Test(arguments: [0, 4])
    func aTinyHotTierMatchesAnUntieredStore(hotUsers: Int) async throws {
        let a = try TrainedStore(), b = try TrainedStore(), metrics = RecordedMetrics()
        defer { a.remove(); b.remove() }
        let (untiered, pu) = try open(a, hotUsers: .max)
        let (tiered, pt) = try open(b, hotUsers: hotUsers, metrics: metrics)
        var rng = SplitMix64(seed: 99)
        for round in 0..<8 {
            let batch: [(uid: String, item: String, label: Float)] = (0..<40).map { _ in
                ("u\(rng.next() % 70)", "i\(rng.next() % 45)", Float(rng.nextUniform() * 5))
            }
            // Single observes and a bulk one: both paths learn in log order.
            if round % 2 == 0 {
                for o in batch {
                    try await untiered.observe(model: "demo", [o])
                    try await tiered.observe(model: "demo", [o])
                }
            } else {
                try await untiered.observe(model: "demo", batch)
                try await tiered.observe(model: "demo", batch)
            }
            try untiered.snapshotter.snapshot()
            try tiered.snapshotter.snapshot()
        }
        let users = try tiered.registry.model("demo").current.users
        #expect(metrics.users(model: "demo").rebuilds > 0 && metrics.users(model: "demo").evictions > 0)
        #expect(users.hotCount <= 64 * ((hotUsers + 63) / 64), "after a snapshot every user is clean, so the bound holds")
        #expect(metrics.gauge("osprey_users", model: "demo") == Double(users.count)
            && metrics.gauge("osprey_users_hot", model: "demo") == Double(users.hotCount)
            && metrics.gauge("osprey_users_cold", model: "demo") == Double(users.count - users.hotCount))
        let all = try untiered.registry.model("demo").current.users
        #expect(all.hotCount == all.count, "untiered: every user stays hot")
        try expectSame(untiered, pu, tiered, pt)
        // The stored snapshots agree row for row, full and compact.
        let sa = try a.stores.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5), sb = try b.stores.snapshots.loadSnapshot(model: "demo", version: 1, dimension: 5)
        #expect(sa.users == sb.users)
        let d = try tiered.registry.model("demo").version.dimension
        var ca: [String: [Float]] = [:], cb: [String: [Float]] = [:]
        try a.stores.snapshots.forEachStoredWeights(model: "demo", version: 1, dimension: d) { ca[$0.uid] = $0.weights }
        try b.stores.snapshots.forEachStoredWeights(model: "demo", version: 1, dimension: d) { cb[$0.uid] = $0.weights }
        #expect(ca == cb && ca.count == sa.users.count)
        #expect(ca.allSatisfy { uid, w in w == Array(sa.users[uid]!.ridge.weights.prefix(d)) })
    }

    /// Without a snapshot after the last observations (as after a kill), a tiered restart
    /// loads only compact rows and replays the log, and equals the process that learned them.
    @Test(arguments: [false, true])
    func aTieredRestartAfterAKillRestoresEveryUserExactly(itemUpdates: Bool) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let (live, p) = try open(t, hotUsers: 0, itemUpdates: itemUpdates)
        var rng = SplitMix64(seed: 5)
        for round in 0..<6 {
            let batch: [(uid: String, item: String, label: Float)] = (0..<30).map { _ in
                ("u\(rng.next() % 70)", "i\(rng.next() % 45)", Float(rng.nextUniform() * 5))
            }
            try await live.observe(model: "demo", batch)
            if round < 3 { try live.snapshotter.snapshot() }
        }
        live.itemPublisher.publish()
        for hot in [0, 4, Int.max] {
            let (restarted, q) = try open(t, hotUsers: hot, itemUpdates: itemUpdates)
            try expectSame(live, p, restarted, q)
        }
    }

    /// `exclude_observed` leaves out what a user rated and observed, whether the observation is
    /// still pending in memory, recorded by a snapshot, learned again after a kill, or from before
    /// a retrain (whose version reflects the log up to its start).
    @Test func excludeObservedHoldsForColdUsers() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        var (m, p) = try open(t, hotUsers: 0)
        let uid = t.ratings[0].uid
        let ids = try m.registry.model("demo").version.features.catalog.ids
        var rated = Set(t.ratings.filter { $0.uid == uid }.map(\.item))
        var strangers: Set<String> = []
        func check(_ when: Comment) throws {
            let top = try p.topK(model: "demo", uid: uid, k: ids.count, items: nil, excludeObserved: true).items.map(\.item)
            #expect(Set(top) == Set(ids).subtracting(rated), when)
            let stranger = try p.topK(model: "demo", uid: "stranger", k: ids.count, items: nil, excludeObserved: true).items.map(\.item)
            #expect(Set(stranger) == Set(ids).subtracting(strangers), when)
        }
        func observe(_ n: Int) async throws {
            try await m.observe(model: "demo", [(uid, ids[n], 5), ("stranger", ids[n + 1], 1)])
            rated.insert(ids[n])
            strangers.insert(ids[n + 1])
        }
        try await observe(1)
        try check("pending")
        try m.snapshotter.snapshot()
        let users = try m.registry.model("demo").current.users
        users.readHot(uid) { #expect($0 == nil, "clean after the snapshot, so evicted") }
        try check("recorded by the snapshot")
        let recorded = try t.stores.snapshots.observedItems(model: "demo", uid: uid).count
            + t.stores.snapshots.observedItems(model: "demo", uid: "stranger").count
        #expect(recorded == 2)
        try await observe(3)
        (m, p) = try open(t, hotUsers: 0)
        try check("after a kill: the log past the snapshot learned again")
        try await observe(5)
        let id = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        try check("after a retrain")
        (m, p) = try open(t, hotUsers: 0)
        try check("after a kill following the retrain")
    }

    /// When a cold user's rebuild fails, its observation stays logged but unlearned: snapshots
    /// keep their sequence below it, the user's next rebuild replays it, and so does a restart.
    /// Users only: with items learning online, such an observation is never learned by its item
    /// (docs/operations.md, "Items learn online"), so a restart's items would differ.
    @Test(arguments: TrainedStore.Backend.durable)
    func anObservationAFailedRebuildLeftIsLearnedLater(_ backend: TrainedStore.Backend) async throws {
        let a = try TrainedStore(), b = try TrainedStore(backend: backend)
        defer { a.remove(); b.remove() }
        let (reference, pr) = try open(a, hotUsers: .max, itemUpdates: false)
        let (tiered, pt) = try open(b, hotUsers: 0, itemUpdates: false)
        let uid = "u3"
        func both(_ batch: [(uid: String, item: String, label: Float)]) async throws {
            try await reference.observe(model: "demo", batch)
            try await tiered.observe(model: "demo", batch)
        }
        try await both([(uid, "i1", 4), ("u5", "i2", 1)])
        try tiered.snapshotter.snapshot()
        let saved = try #require(try b.stores.snapshots.loadUserState(model: "demo", version: 1, uid: uid, dimension: 5))
        // The user's row cannot be read: its next rebuild fails.
        if let postgres = b.postgres {
            try postgres.database.transaction { try $0.execute("DELETE FROM user_ridge WHERE uid = \(uid)") }
        } else {
            try await #require(b.sqlite).snapshots.database.pool.write {
                try $0.execute(sql: "DELETE FROM user_ridge WHERE uid = ?", arguments: [uid])
            }
        }
        try await both([(uid, "i4", 5), ("u5", "i6", 2)])
        let failed = try b.stores.log.lastSequence() - 1
        let users = try tiered.registry.model("demo").current.users
        #expect(users.earliestUnlearned == failed)
        try tiered.snapshotter.snapshot()
        #expect(try b.stores.snapshots.snapshotSequence(model: "demo", version: 1) < failed, "held below the unlearned observation")
        // The row is readable again.
        try b.stores.snapshots.saveSnapshot(model: "demo", version: 1, rows: [SnapshotRow(uid: uid, weights: saved.weights, seq: saved.seq)])
        let restarted = try open(b, hotUsers: 0, itemUpdates: false)
        try expectSame(reference, pr, restarted.0, restarted.1)
        // The live process: the next observation's rebuild replays the one left unlearned.
        try await both([(uid, "i7", 3)])
        #expect(users.earliestUnlearned == nil)
        try expectSame(reference, pr, tiered, pt)
        try tiered.snapshotter.snapshot()
        #expect(try b.stores.snapshots.snapshotSequence(model: "demo", version: 1) > failed)
        let again = try open(b, hotUsers: 0, itemUpdates: false)
        try expectSame(reference, pr, again.0, again.1)
    }

    /// A retrain installs its users cold; they rebuild from the new version's rows.
    @Test func aTieredRetrainEqualsAnUntieredOne() async throws {
        let a = try TrainedStore(), b = try TrainedStore()
        defer { a.remove(); b.remove() }
        let (untiered, pu) = try open(a, hotUsers: .max)
        let (tiered, pt) = try open(b, hotUsers: 0)
        let batch: [(uid: String, item: String, label: Float)] = (0..<60).map { ("u\($0 % 13)", "i\($0 % 17)", Float($0 % 5)) }
        try await untiered.observe(model: "demo", batch)
        try await tiered.observe(model: "demo", batch)
        for m in [untiered, tiered] {
            let id = try m.retrainer.start(model: "demo")
            #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        }
        #expect(try tiered.registry.model("demo").current.users.hotCount == 0)
        try await untiered.observe(model: "demo", Array(batch.prefix(20)))
        try await tiered.observe(model: "demo", Array(batch.prefix(20)))
        try expectSame(untiered, pu, tiered, pt)
    }

    /// A retrain, and a rollback, carry the hot set over: the users hot before the swap are hot
    /// after it (read from the new version's rows before it serves), so their next observations
    /// rebuild no one, and the result equals a server that rebuilt them on demand.
    @Test func aRetrainAndARollbackCarryTheHotSetOver() async throws {
        let a = try TrainedStore(), b = try TrainedStore()
        defer { a.remove(); b.remove() }
        let metrics = RecordedMetrics()
        let (carried, pc) = try open(a, hotUsers: 1000, metrics: metrics)
        let (onDemand, pd) = try open(b, hotUsers: 0)
        let active = Set((0..<20).map { "u\($0)" })
        let first: [(uid: String, item: String, label: Float)] = (0..<20).map { ("u\($0)", "i\($0)", 4) }
        let next: [(uid: String, item: String, label: Float)] = (0..<20).map { ("u\($0)", "i\($0 + 1)", 5) }
        for m in [carried, onDemand] {
            try await m.observe(model: "demo", first)
        }
        #expect(Set(try carried.registry.model("demo").current.users.hotUids()) == active)
        for m in [carried, onDemand] {
            let id = try m.retrainer.start(model: "demo")
            #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        }
        do {  // Not held past the rollback: a state still held when it is replaced keeps its hot states.
            let retrained = try carried.registry.model("demo").current
            #expect(retrained.version.number == 2 && retrained.users.count > 20)
            #expect(Set(retrained.users.hotUids()) == active, "the users hot before the retrain are hot after it")
        }
        #expect(metrics.count("osprey_user_states_recycled_total", model: "demo") == 20, "packed into the replaced states")
        let rebuilds = metrics.users(model: "demo").rebuilds
        for m in [carried, onDemand] {
            try await m.observe(model: "demo", next)
        }
        #expect(metrics.users(model: "demo").rebuilds == rebuilds, "no rebuild for a carried user")
        try expectSame(carried, pc, onDemand, pd)

        for m in [carried, onDemand] {
            try await m.installer.rollback(model: "demo", to: 1)
        }
        #expect(Set(try carried.registry.model("demo").current.users.hotUids()) == active, "and after a rollback")
        // Only the users the catch-up left cold are carried: it keeps up to one hot a stripe, so
        // some are when two active users share a stripe (by a hash seeded anew in each process).
        let stripes = Set(active.map { StripedLocks<UserWeightStore.Stripe>.stripe(of: $0) })
        let recycled = metrics.count("osprey_user_states_recycled_total", model: "demo")
        #expect(stripes.count < active.count ? recycled > 20 : recycled == 20, "\(stripes.count) stripes: \(recycled)")
        let rolledBack = metrics.users(model: "demo").rebuilds
        for m in [carried, onDemand] {
            try await m.observe(model: "demo", first)
        }
        #expect(metrics.users(model: "demo").rebuilds == rolledBack)
        try expectSame(carried, pc, onDemand, pd)
    }

    /// A version that catches up with the log before it serves keeps only a few users hot: the
    /// others are demoted (weights current, full state lagging) and rebuilt from their rows and
    /// their observations since when they learn again in a later span (the catch-up learns user
    /// by user), then made hot once it serves. The result has the same bits as holding every
    /// user it learned, and so does a restart after it; in one span or in many (then a demoted
    /// user's rebuild replays what the catch-up recorded of it).
    @Test(arguments: [100_000, 7])
    func aCatchUpHoldingFewUsersEqualsOneHoldingAll(span: Int) async throws {
        let a = try TrainedStore(), b = try TrainedStore()
        defer { a.remove(); b.remove() }
        let counted = RecordedMetrics(), uncounted = RecordedMetrics()
        func open(_ t: TrainedStore, catchUp: Int, span: Int = 100_000, metrics: RecordedMetrics) throws -> (Manager, Predictor) {
            let m = try Manager(stores: try t.reopen(), configuration: .init(hotUsers: 1000, catchUpHotUsers: catchUp, catchUpSpan: span),
                                metrics: metrics.engine, logger: quiet)
            return (m, Predictor(registry: m.registry))
        }
        let (few, pf) = try open(a, catchUp: 2, span: span, metrics: counted)
        let (all, pa) = try open(b, catchUp: 1_000_000, metrics: uncounted)
        var rng = SplitMix64(seed: 11)
        func batch(_ n: Int) -> [(uid: String, item: String, label: Float)] {
            (0..<n).map { _ in ("u\(rng.next() % 60)", "i\(rng.next() % 40)", Float(rng.next() % 5 + 1)) }
        }
        let first = batch(300), second = batch(300), third = batch(200)
        for m in [few, all] { try await m.observe(model: "demo", first) }
        for m in [few, all] {
            #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        }
        for m in [few, all] { try await m.observe(model: "demo", second) }
        let rebuilt = (counted.users(model: "demo").rebuilds, uncounted.users(model: "demo").rebuilds)
        // Version 1's rows are those it was trained with: the rollback replays all 600 observations.
        for m in [few, all] { try await m.installer.rollback(model: "demo", to: 1) }
        let served = try few.registry.model("demo").current
        #expect(served.version.number == 1)
        #expect(served.users.earliestUnlearned == nil, "every demoted user is hot once the version serves")
        #expect(served.users.recent.from == nil, "and what the catch-up recorded is let go")
        #expect(served.quality == (try all.registry.model("demo").current.quality), "the monitor took the outcomes in log order")
        let users = Set((first + second).map(\.uid)).count
        let bounded = counted.users(model: "demo").rebuilds - rebuilt.0, unbounded = uncounted.users(model: "demo").rebuilds - rebuilt.1
        #expect(unbounded == users, "each user rebuilt once, from its row")
        #expect(bounded > unbounded, "demoted users were rebuilt")
        if span > 600 {
            // The 600 observations are one span, learned user by user: a demoted user is rebuilt
            // at most once in it (not once for each of its ten observations), and once more when
            // it is made hot after the swap.
            #expect(bounded <= 2 * users, "once a span: \(bounded)")
        }
        try expectSame(few, pf, all, pa)
        for m in [few, all] {
            try await m.observe(model: "demo", third)
            try m.snapshotter.snapshot()
        }
        try expectSame(few, pf, all, pa)
        let (fewAgain, pfa) = try open(a, catchUp: 2, span: span, metrics: .init())
        try expectSame(fewAgain, pfa, all, pa)
    }

    /// With item updates the catch-up learns in log order (users and items learn from one
    /// another) and still keeps few users hot: a demoted user's rebuild learns what its updates
    /// read of their items as they ran, not the items' rows as they are by then. Users and items
    /// end with the same bits as a catch-up holding every user, through a rollback, a retrain,
    /// a snapshot and a restart; and no snapshot is cut while demoted users are not yet hot.
    @Test func withItemUpdatesACatchUpHoldingFewUsersEqualsOneHoldingAll() async throws {
        let a = try TrainedStore(), b = try TrainedStore()
        defer { a.remove(); b.remove() }
        let counted = RecordedMetrics()
        func open(_ t: TrainedStore, catchUp: Int, metrics: RecordedMetrics = .init()) throws -> (Manager, Predictor) {
            let m = try Manager(stores: try t.reopen(),
                                configuration: .init(hotUsers: 1000, itemUpdates: true, catchUpHotUsers: catchUp),
                                metrics: metrics.engine, logger: quiet)
            return (m, Predictor(registry: m.registry))
        }
        let (few, pf) = try open(a, catchUp: 2, metrics: counted)
        let (all, pa) = try open(b, catchUp: 1_000_000)
        let stream = ItemLearningTests.stream(1_000, seed: 17)
        func expectAllSame(_ comment: String) throws {
            for m in [few, all] { m.itemPublisher.publish() }
            ItemLearningTests.expectSame(try ItemLearningTests.Captured(few), try ItemLearningTests.Captured(all), comment)
            try expectSame(few, pf, all, pa)
        }
        for m in [few, all] { _ = try await m.observe(model: "demo", Array(stream[0..<300])) }
        for m in [few, all] {
            #expect(try await m.retrainer.wait(forJob: m.retrainer.start(model: "demo"), model: "demo").phase == .done)
        }
        for m in [few, all] { _ = try await m.observe(model: "demo", Array(stream[300..<600])) }
        try expectAllSame("after a retrain")
        let rebuilt = counted.users(model: "demo").rebuilds
        // Version 1's rows are those it was trained with: the rollback replays 600 observations.
        for m in [few, all] { try await m.installer.rollback(model: "demo", to: 1) }
        let served = try few.registry.model("demo").current
        #expect(served.version.number == 1)
        #expect(served.users.earliestUnlearned == nil, "every demoted user is hot once the version serves")
        #expect(served.users.recent.from == nil, "and what the catch-up recorded is let go")
        let users = Set(stream[0..<600].map(\.uid)).count
        #expect(counted.users(model: "demo").rebuilds - rebuilt > 2 * users, "demoted users were rebuilt, some more than once")
        try expectAllSame("after a rollback")
        for m in [few, all] { _ = try await m.observe(model: "demo", Array(stream[600..<1_000])) }
        // While a catch-up's window is open, the snapshot leaves the state out; then it cuts.
        served.users.beginCatchUp(from: try few.stores.log.lastSequence() + 1)
        #expect(try few.snapshotter.snapshot() == 0)
        served.users.recent.close()
        for m in [few, all] { #expect(try m.snapshotter.snapshot() > 0) }
        try expectAllSame("after a snapshot")
        let live = try ItemLearningTests.Captured(all)
        let (fewAgain, _) = try open(a, catchUp: 2)
        fewAgain.itemPublisher.publish()
        ItemLearningTests.expectSame(live, try ItemLearningTests.Captured(fewAgain), "after a restart")
    }

    /// A replaced store's hot states, freed while an install is under way, are the memory the
    /// carry packs the new store's users into: each carried user's state is exact and stored
    /// where one of the old states was, and none is allocated. A state someone still holds (a
    /// snapshot's capture) is copied, not reused, and not counted. What the carry does not take
    /// is freed when the install ends; a store freed while none is under way keeps nothing.
    @Test func aCarryPacksItsUsersIntoTheReplacedHotStates() throws {
        let metrics = RecordedMetrics(), recycler = HotStateRecycler()
        let uids = (0..<100).map { "u\($0)" }
        @Sendable func row(_ uid: String, version: Float) -> UserWeights {
            let n = Float(uid.dropFirst())!
            return UserWeights(ridge: .init(prior: [version, n / 7, -n], lambda: 1 + n / 100), bootstrapped: false)
        }
        func store(version: Float) -> UserWeightStore {
            let s = UserWeightStore(stride: 8, hotUsers: 1000, rebuild: { uid, _ in row(uid, version: version) },
                                    metrics: UserMetrics(factory: metrics.factory), recycler: recycler)
            for uid in uids {
                s.insertCold(StoredWeights(uid: uid, weights: [version, 0, 0], observations: 0, runningLoss: nil, bootstrapped: false, seq: 1))
            }
            return s
        }
        func storage(_ s: UserWeightStore, _ uid: String) -> UInt? {
            guard case .packed(let p)? = s.captureHot(uid)?.ridge.ridge else { return nil }
            return p.storageAddress
        }
        var replaced: UserWeightStore? = store(version: 1)
        #expect(replaced!.warm(uids, threads: 2) == 100)
        let old = Set(uids.compactMap { storage(replaced!, $0) })
        #expect(old.count == 100)
        let held = replaced!.captureHot("u0")

        recycler.open()
        let next = store(version: 2)
        replaced = nil
        #expect(recycler.count == 100, "the replaced store's hot states are kept while the install is under way")
        #expect(next.warm(uids, threads: 2) == 100)
        #expect(metrics.count("osprey_user_states_recycled_total") == 99, "all but the held one packed in place")
        for uid in uids {
            #expect(try next.fullState(uid) == row(uid, version: 2))
        }
        // The held state was copied by whichever user took it: while it is held, no old address is free.
        let new = uids.compactMap { storage(next, $0) }
        #expect(Set(new).count == 100 && new.filter(old.contains).count == 99)
        #expect(recycler.close().map { [$0.reused, $0.freed] } == [99, 0])
        withExtendedLifetime(held) {}

        // Not taken by the carry: freed at the end of the install.
        recycler.open()
        var more: UserWeightStore? = store(version: 3)
        #expect(more!.warm(Array(uids.prefix(10)), threads: 1) == 10)
        more = nil
        #expect(recycler.count == 10)
        #expect(recycler.close().map { [$0.reused, $0.freed] } == [0, 10] && recycler.count == 0)

        // No install under way: nothing is kept.
        var idle: UserWeightStore? = store(version: 4)
        #expect(idle!.warm(uids, threads: 1) == 100)
        idle = nil
        #expect(recycler.count == 0)
        withExtendedLifetime(next) {}
    }

    /// A snapshot's capture shares the packed state copy-on-write: the user learning afterwards
    /// changes the store, not what was captured.
    @Test func aCapturedStateIsUnchangedByLaterLearning() throws {
        let store = UserWeightStore(stride: 8)
        let f: [Float] = [1, 0.25, 0.5, 0, 0, 0, 0, 0]
        func learn(_ target: Float) throws {
            try store.update("u", before: 1, create: { UserWeights(ridge: .init(prior: [0, 0, 0], lambda: 1), bootstrapped: true) }) { w in
                f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: target) }
            }
        }
        try learn(1)
        let before = try #require(store.readHot("u") { $0.map { copy $0 } })
        let captured = try #require(store.captureHot("u"))
        try learn(5)
        try learn(-2)
        #expect(captured.weights == before)
        let after = try #require(store.readHot("u") { $0.map { copy $0 } })
        #expect(after != before && after.observations == 3)
        #expect(store.captureHot("nobody") == nil)
    }

    /// Dirty users and users being saved stay hot; a failed save makes them dirty again; once
    /// saved they are evicted down to the capacity; a cold user that learns is rebuilt.
    @Test func onlySavedUsersAreEvicted() throws {
        let metrics = RecordedMetrics()
        let store = UserWeightStore(stride: 8, hotUsers: 0, rebuild: { _, _ in
            UserWeights(ridge: .init(prior: [0.5, 0.5, 0.5], lambda: 1), bootstrapped: false)
        }, metrics: UserMetrics(factory: metrics.factory))
        let f: [Float] = [1, 0, 0.5, 0, 0, 0, 0, 0]
        func learn(_ uid: String) throws {
            try store.update(uid, before: 1, create: { UserWeights(ridge: .init(prior: [0, 0, 0], lambda: 1), bootstrapped: true) }) { w in
                f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: 1) }
            }
        }
        for u in 0..<200 { try learn("u\(u)") }
        #expect(store.hotCount == 200, "dirty users stay hot")
        let changed = store.takeChanged()
        #expect(changed.count == 200 && store.hotCount == 200, "users being saved stay hot")
        store.markChanged(changed)
        #expect(store.hotCount == 200 && metrics.users().evictions == 0, "a failed save: dirty again")
        #expect(metrics.gauge("osprey_users_hot") == 200)
        store.finishSnapshot(store.takeChanged())
        #expect(store.hotCount == 0 && metrics.users().evictions == 200, "saved, and the capacity is 0")
        #expect(store.count == 200)
        #expect(metrics.gauge("osprey_users") == 200 && metrics.gauge("osprey_users_hot") == 0 && metrics.gauge("osprey_users_cold") == 200)
        store.read("u7") { #expect($0?.observations == 1) }
        try learn("u7")
        #expect(metrics.users().rebuilds == 1 && store.hotCount == 1 && metrics.gauge("osprey_users_hot") == 1)
        store.read("u7") { #expect($0?.observations == 1, "rebuilt from the stand-in state, then learned once") }
    }

    /// A snapshot's cut takes the stripes' collections without reading them
    /// (``UserWeightStore/takeChangedAtCut(states:)``, ``ObservedItems/takeAllAtCut()``): what it lists
    /// afterwards is what was changed and observed at the cut, as it was then, though users
    /// learned and observed since; and what they did since is the next cut's.
    @Test func aCutListsTheStatesOfItsMoment() throws {
        let store = UserWeightStore(stride: 8)
        let observed = ObservedItems { _ in [] }
        func learn(_ uid: String, _ target: Float) throws {
            let f: [Float] = [1, 0, 0.5, 0, 0, 0, 0, 0]
            try store.update(uid, before: 1, create: { UserWeights(ridge: .init(prior: [0, 0, 0], lambda: 1), bootstrapped: true) }) { w in
                f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: target) }
            }
            observed.insert(uid: uid, item: "i\(Int(target))")
        }
        for u in 0..<100 { try learn("u\(u)", 1) }
        let atCut = try (0..<100).map { u in try #require(try store.fullState("u\(u)")).ridge.weights }
        let users = store.takeChangedAtCut(states: true), items = observed.takeAllAtCut()
        for u in 0..<50 { try learn("u\(u)", 5) }
        try learn("late", 5)

        let captured = users.captured()
        #expect(captured.count == 100 && Set(users.uids) == Set((0..<100).map { "u\($0)" }))
        for (uid, state) in captured {
            let w = state.weights
            #expect(w.observations == 1 && w.ridge.weights == atCut[Int(uid.dropFirst())!], "\(uid) as it was at the cut")
        }
        #expect(try store.fullState("u7")?.observations == 2, "the live state learned on")
        #expect(items.items.count == 100 && items.items.allSatisfy { $0.item == "i1" }, "the items observed before the cut only")
        #expect(try observed.items(of: "u7") == ["i1", "i5"], "memory still holds both until they are recorded")

        let next = store.takeChanged()
        #expect(Set(next) == Set((0..<50).map { "u\($0)" } + ["late"]), "what changed since, and only that, is the next cut's")
        #expect(observed.takeAll().count == 51)
    }

    /// A cold user's state read ahead (``UserWeightStore/prefetch(_:)``) is what its learning
    /// uses, without another read; a read that finishes after the user was promoted is dropped,
    /// so once the user is saved and cold again its new row is read, not the old state.
    @Test func aStateReadAheadIsUsedOnlyWhileTheUserStaysCold() throws {
        // The "snapshot rows": one stand-in state per generation of the row; the rebuild counts reads.
        let row = Mutex(0), reads = Atomic(0)
        @Sendable func state(_ generation: Int) -> UserWeights {
            UserWeights(ridge: .init(prior: [Float(generation), 0.5, 0.5], lambda: 1), observations: generation, bootstrapped: false)
        }
        let metrics = RecordedMetrics()
        let store = UserWeightStore(stride: 8, hotUsers: 0, rebuild: { _, _ in
            reads.add(1, ordering: .relaxed)
            return row.withLock { state($0) }
        }, metrics: UserMetrics(factory: metrics.factory))
        let f: [Float] = [1, 0, 0.5, 0, 0, 0, 0, 0]
        func learn(_ uid: String) throws {
            try store.update(uid, before: 1, create: { UserWeights(ridge: .init(prior: [0, 0, 0], lambda: 1), bootstrapped: true) }) { w in
                f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: 1) }
            }
        }
        func save() { store.finishSnapshot(store.takeChanged()) }
        #expect(store.prefetch("u") == nil, "an unknown user has nothing to read")
        try learn("u")
        #expect(store.prefetch("u") == nil, "nor has a hot one")
        save()
        #expect(store.hotCount == 0)

        // Read ahead, then learned: one read, and the state is the row's, then learned once.
        row.withLock { $0 = 1 }
        let read = try #require(store.prefetch("u"))
        #expect(store.prefetch("u") == nil, "one read at a time")
        read()
        #expect(reads.load(ordering: .relaxed) == 1)
        try learn("u")
        #expect(reads.load(ordering: .relaxed) == 1 && metrics.users().prefetchedRebuilds == 1 && metrics.users().rebuilds == 1)
        store.read("u") { #expect($0?.observations == 2, "the row's state (1 observation), learned once") }
        save()

        // A read that finishes after the user was promoted is dropped: the next rebuild reads
        // the row as it is then.
        row.withLock { $0 = 5 }
        let late = try #require(store.prefetch("u"))
        try learn("u")  // promoted by a rebuild of its own (row 5)
        late()
        save()
        row.withLock { $0 = 9 }
        try learn("u")
        store.read("u") { #expect($0?.observations == 10, "row 9, learned once; not the late read of row 5") }
        #expect(metrics.users().prefetchedRebuilds == 1 && metrics.users().rebuilds == 3)
    }

    /// A warm start (``UserWeightStore/warm(_:)``) makes a cold user hot from its row, clean
    /// and without learning; it never evicts anyone, skips hot and unknown users, and drops a
    /// read whose user learned (and so was promoted) while it was under way.
    @Test func aWarmStartPromotesColdUsersWithoutEvictingOrLearning() throws {
        let reads = Atomic(0)
        // Set while the rebuild should first learn `racer` itself (a learn during the read).
        let racer = Mutex<String?>(nil)
        let storeBox = Mutex<UserWeightStore?>(nil)
        let f: [Float] = [1, 0, 0.5, 0, 0, 0, 0, 0]
        @Sendable func learn(_ store: UserWeightStore, _ uid: String) throws {
            try store.update(uid, before: 1, create: { UserWeights(ridge: .init(prior: [0, 0, 0], lambda: 1), bootstrapped: true) }) { w in
                f.withUnsafeBufferPointer { _ = w.learn(features: $0.baseAddress!, target: 1) }
            }
        }
        let metrics = RecordedMetrics()
        let store = UserWeightStore(stride: 8, hotUsers: 64, rebuild: { uid, _ in
            if let r = racer.withLock({ r in defer { r = nil }; return r }), let store = storeBox.withLock({ $0 }) {
                try learn(store, r)
            }
            reads.add(1, ordering: .relaxed)
            return UserWeights(ridge: .init(prior: [2, 0.5, 0.5], lambda: 1), observations: 3, runningLoss: 0.25, bootstrapped: false)
        }, metrics: UserMetrics(factory: metrics.factory))
        storeBox.withLock { $0 = store }
        for n in 0..<300 {
            store.insertCold(StoredWeights(uid: "u\(n)", weights: [2, 0.5, 0.5], observations: 3, runningLoss: 0.25, bootstrapped: false, seq: 1))
        }
        #expect(!store.warm("nobody"), "an unknown user has no row")
        #expect(store.warm("u0") && store.hotCount == 1 && reads.load(ordering: .relaxed) == 1)
        #expect(!store.warm("u0") && reads.load(ordering: .relaxed) == 1, "a hot user is not read again")
        store.read("u0") { #expect($0?.observations == 3 && $0?.runningLoss == 0.25) }
        #expect(store.takeChanged().isEmpty, "warmed users are clean: a snapshot has nothing to save")

        // Its first learn needs no rebuild.
        try learn(store, "u0")
        #expect(metrics.users().rebuilds == 0 && reads.load(ordering: .relaxed) == 1)
        store.read("u0") { #expect($0?.observations == 4) }

        // The tier holds 1 user per stripe: warming 300 fills at most the 64 stripes and evicts
        // no one (u0 is dirty now, and warming would not push out a clean one either).
        var warmed = 1
        for n in 1..<300 where store.warm("u\(n)") { warmed += 1 }
        #expect(store.hotCount == warmed && warmed <= 64 && warmed > 1)
        #expect(metrics.users().evictions == 0 && metrics.users().warmed == warmed)
        #expect(metrics.gauge("osprey_users_hot") == Double(warmed) && metrics.gauge("osprey_users_cold") == Double(300 - warmed))
        store.readHot("u0") { #expect($0?.observations == 4, "the learned user stays hot") }

        // A learn of the user while its warm read is under way wins: the read is dropped.
        let cold = (0..<300).map { "u\($0)" }.first { uid in store.readHot(uid) { $0 == nil } }!
        store.finishSnapshot(store.takeChanged())  // u0 clean: its stripe may evict it for `cold`
        racer.withLock { $0 = cold }
        #expect(!store.warm(cold), "promoted by its own learn during the read")
        store.read(cold) { #expect($0?.observations == 4, "the row's state learned once, not replaced by the warm read") }
        #expect(metrics.users().rebuilds == 1 && metrics.users().warmed == warmed)
    }

    /// After a restart the users who were hot at the last snapshot are made hot again (at most
    /// the hot tier's capacity); their next observations rebuild no one, and the warmed server
    /// equals one that rebuilt its users on demand. The warmed users are hot at its next
    /// snapshot, so the hot tier carries over restart after restart.
    @Test(arguments: TrainedStore.Backend.available)
    func aRestartWarmsTheUsersHotAtTheLastSnapshot(_ backend: TrainedStore.Backend) async throws {
        // The same history in two stores: u0...u19 learn, on a tiered server (the other trained
        // users stay cold).
        let a = try TrainedStore(backend: backend), b = try TrainedStore(backend: backend)
        defer { a.remove(); b.remove() }
        for t in [a, b] {
            let (live, _) = try open(t, hotUsers: 1000)
            try await live.observe(model: "demo", (0..<20).map { ("u\($0)", "i\($0)", 4) })
            try live.snapshotter.snapshot()
            #expect(try live.registry.model("demo").current.users.count > 20)
        }
        #expect(Set(try a.stores.snapshots.hotUsers(model: "demo", version: 1)) == Set((0..<20).map { "u\($0)" }))

        let metrics = RecordedMetrics(), coldMetrics = RecordedMetrics()
        let (warm, pw) = try open(a, hotUsers: 1000, metrics: metrics)
        let users = try warm.registry.model("demo").current.users
        #expect(users.hotCount == 0, "a start loads compact rows only")
        #expect(await warm.warmStart.warm() == 20 && users.hotCount == 20 && metrics.users(model: "demo").warmed == 20)
        #expect(await warm.warmStart.warm() == 0 && users.warmStartList.isEmpty, "once per start")
        let cold = try Manager(stores: try b.reopen(), configuration: .init(hotUsers: 1000, warmStart: false), metrics: coldMetrics.engine,
                               logger: quiet)
        let pc = Predictor(registry: cold.registry)
        #expect(await cold.warmStart.warm(threads: 1) == 0, "--no-warm-start")
        let next: [(uid: String, item: String, label: Float)] = (0..<20).map { ("u\($0)", "i\($0 + 1)", 5) }
        try await warm.observe(model: "demo", next)
        try await cold.observe(model: "demo", next)
        #expect(metrics.users(model: "demo").rebuilds == 0)
        #expect(coldMetrics.users(model: "demo").rebuilds == 20)
        try expectSame(warm, pw, cold, pc)

        // Warmed, then snapshotted: the same users are named for the start after.
        try await warm.observe(model: "demo", [("u30", "i1", 2)])
        try warm.snapshotter.snapshot()
        let (again, _) = try open(a, hotUsers: 1000)
        #expect(Set(try again.registry.model("demo").current.users.warmStartList) == Set((0..<20).map { "u\($0)" } + ["u30"]))
        // A warm start stopped before it made anyone hot still records them as hot.
        let (stopped, _) = try open(a, hotUsers: 1000)
        let named = Set((0..<20).map { "u\($0)" } + ["u30"])
        #expect(Set(try stopped.registry.model("demo").current.users.hotUids()) == named, "a snapshot before the warm start records them")
        let made = await Task { () async -> Int in
            withUnsafeCurrentTask { $0?.cancel() }
            return await stopped.warmStart.warm()
        }.value
        let s = try stopped.registry.model("demo").current.users
        #expect(made == 0 && s.hotCount == 0)
        #expect(Set(s.hotUids()) == named)
        // A smaller tier takes as many as it holds.
        let (tiny, _) = try open(a, hotUsers: 10)
        #expect(try tiny.registry.model("demo").current.users.warmStartList.count == 10)
    }

    /// Every user's info, full ridge state and predictions agree bit for bit.
    func expectSame(_ m1: Manager, _ p1: Predictor, _ m2: Manager, _ p2: Predictor) throws {
        let s1 = try m1.registry.model("demo").current, s2 = try m2.registry.model("demo").current
        #expect(s1.version.number == s2.version.number)
        #expect(s1.users.count == s2.users.count)
        let items = s1.version.features.catalog.ids
        for u in 0..<70 {
            let uid = "u\(u)"
            #expect(try m1.info(model: "demo", uid: uid) == m2.info(model: "demo", uid: uid))
            #expect(try s1.users.fullState(uid) == s2.users.fullState(uid), "user \(uid)")
            for item in items.prefix(12) {
                #expect(try p1.predict(model: "demo", uid: uid, item: item) == p2.predict(model: "demo", uid: uid, item: item))
            }
        }
    }
}
