import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine
@testable import OspreyStorage

/// Items learning online in serving (docs/architecture.md, "Items learn online"): each
/// observation is an exact ridge step of its item before its user learns it, answers change
/// only when the rows are published, and a restart — after a clean snapshot or one cut
/// short — restores users and items bit for bit.
struct ItemLearningTests {
    static func configuration(itemUpdates: Bool = true, snapshotObservations: Int = 500_000) -> Manager.Configuration {
        .init(snapshotObservations: snapshotObservations, monitor: .init(validationFraction: 0), hotUsers: 20, warmStart: false,
              itemUpdates: itemUpdates)
    }

    /// A stream over the fixture's users and items: `count` observations, deterministic.
    static func stream(_ count: Int, seed: UInt64 = 3) -> [(uid: String, item: String, label: Float)] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            ("u\(rng.next() % 70)", "i\(rng.next() % 40)", Float(rng.next() % 5) + 1)
        }
    }

    /// Item `id`'s live row and offset (`dimension` entries), read through its learner.
    static func liveRow(_ state: ServingState, _ id: String) -> [Float] {
        let row = state.features.row(of: id)!
        return state.itemLearner!.withRow(row, features: state.features) { f, offset in
            Array(UnsafeBufferPointer(start: f, count: state.version.dimension)) + [offset]
        }
    }

    /// The served (published) row and offset of item `id`.
    static func servedRow(_ state: ServingState, _ id: String) -> [Float] {
        let features = state.features
        return features.withFeatures(item: features.row(of: id)!) { f, offset in
            Array(UnsafeBufferPointer(start: f, count: state.version.dimension)) + [offset]
        }
    }

    @Test("an item's online row is the direct ridge solve of its training raters and its online ones")
    func itemUpdatesMatchADirectSolve() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        let state = try m.registry.model("demo").current
        let v = state.version, d = v.dimension, k = d - 1
        let item = "i3"
        // The item's training system: A₀ = λI + Σ g gᵀ over its raters with the weights the
        // users had at the start, b₀ = A₀ x_served.
        func weights(_ uid: String) -> [Float]? {
            state.users.read(uid) { $0.map { Array(UnsafeBufferPointer(start: $0.weights, count: d)) } }
        }
        var a = [Double](repeating: 0, count: d * d)
        for e in 0..<d { a[e * d + e] = Double(v.metadata.lambda) }
        func add(_ w: [Float], _ target: Double, into b: inout [Double]) {
            let g = w[0..<k].map(Double.init) + [1]
            for p in 0..<d {
                b[p] += target * g[p]
                for q in 0..<d { a[p * d + q] += g[p] * g[q] }
            }
        }
        var unused = [Double](repeating: 0, count: d)
        for r in t.ratings where r.item == item { add(weights(r.uid)!, 0, into: &unused) }
        let served = Self.servedRow(state, item)
        let x0 = served[0..<k].map(Double.init) + [Double(served[d])]
        var b = (0..<d).map { p in (0..<d).reduce(0.0) { $0 + a[p * d + $1] * x0[$1] } }
        // Online: each observation's g is the user's weights just before it.
        for (n, uid) in ["u1", "u2", "u3", "u1", "u50"].enumerated() {
            let w: [Float] = weights(uid) ?? v.prior
            let label = Float(n % 5) + 1
            add(w, Double(label) - Double(w[k]), into: &b)
            _ = try await m.observe(model: "demo", [(uid, item, label)])
        }
        let direct = try Cholesky.solve(a, n: d, b)
        let live = Self.liveRow(state, item)
        for e in 0..<k { #expect(abs(Double(live[e]) - direct[e]) < 1e-4, "factor \(e)") }
        #expect(abs(Double(live[d]) - direct[k]) < 1e-4, "offset")
        #expect(live[k] == 1, "the bias feature stays 1")
        #expect(try m.item(model: "demo", id: item).observations == 5)
        #expect(try m.item(model: "demo", id: item).source == .online)
        // Held packed, as hot users are: every item's state, trained and learned online.
        let learner = try #require(state.itemLearner)
        #expect(learner.packedCount == learner.counts.hot && learner.counts.hot == 40)
        #expect(try m.item(model: "demo", id: "i4").source == .trained)
    }

    @Test("answers use the published rows: unchanged until a publication, which invalidates the cache")
    func answersChangeOnlyWhenPublished() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        let p = Predictor(registry: m.registry)
        let state = try m.registry.model("demo").current
        let before = try p.predict(model: "demo", uid: "u9", item: "i3")
        let ranked = try p.topK(model: "demo", uid: "u9", k: 5, items: nil)
        _ = try await m.observe(model: "demo", [("u1", "i3", 5), ("u2", "i3", 5), ("u4", "i3", 5)])
        #expect(try p.predict(model: "demo", uid: "u9", item: "i3") == before, "not published yet")
        #expect(try p.topK(model: "demo", uid: "u9", k: 5, items: nil) == ranked)
        #expect(Self.servedRow(state, "i3") != Self.liveRow(state, "i3"))
        #expect(m.itemPublisher.publish() == 1)
        #expect(Self.servedRow(state, "i3") == Self.liveRow(state, "i3"))
        let after = try p.predict(model: "demo", uid: "u9", item: "i3")
        #expect(after != before, "u9 did not learn, so only the item's row moved")
        // The whole-catalogue answer after publication is a full sort of the published rows.
        let features = state.features
        let w = state.users.read("u9") { Array(UnsafeBufferPointer(start: $0!.weights, count: features.stride)) }
        let sorted = (0..<features.trained).map { (features.id(of: $0), features.score(weights: w, item: $0)) }
            .sorted { ($0.1, $1.0) > ($1.1, $0.0) }.prefix(5)
        #expect(try p.topK(model: "demo", uid: "u9", k: 5, items: nil).items.map(\.item) == sorted.map(\.0))
        #expect(m.itemPublisher.publish() == 0, "nothing new")
    }

    /// The top `k` of a full sort of `features`' trained rows for weights `w`.
    static func fullSort(_ features: ServingFeatures, _ w: [Float], k: Int) -> [String] {
        (0..<features.trained).map { (features.id(of: $0), features.score(weights: w, item: $0)) }
            .sorted { ($0.1, $1.0) > ($1.1, $0.0) }.prefix(k).map(\.0)
    }

    @Test("answers read while items learn and publish come whole from one publication")
    func concurrentReadersSeeOnePublication() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        let p = Predictor(registry: m.registry)
        let state = try m.registry.model("demo").current
        // Users u0…u49 observe; the readers rank for u50…u59, whose weights stay as trained, so
        // each answer depends only on the item rows it read.
        let stream = Self.stream(3000, seed: 21).filter { Int($0.uid.dropFirst())! < 50 }
        let readers = (50..<60).map { uid in
            (uid: "u\(uid)", w: state.users.read("u\(uid)") { Array(UnsafeBufferPointer(start: $0!.weights, count: state.features.stride)) })
        }
        let checked = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask {
                for i in stride(from: 0, to: stream.count - 20, by: 20) { _ = try await m.observe(model: "demo", Array(stream[i..<(i + 20)])) }
                return 0
            }
            group.addTask {
                for _ in 0..<300 { m.itemPublisher.publish(); try await Task.sleep(for: .microseconds(100)) }
                return 0
            }
            for r in 0..<2 {
                group.addTask {
                    var checked = 0
                    for n in 0..<400 {
                        let reader = readers[(n + r) % readers.count]
                        let before = state.features.table.table
                        let ranked = try p.topK(model: "demo", uid: reader.uid, k: 10, items: nil).items.map(\.item)
                        let features = state.features
                        // No publication in between: the answer is the full sort of these rows.
                        guard features.table.table == before else { continue }
                        #expect(ranked == Self.fullSort(features, reader.w, k: 10), "answer \(n) for \(reader.uid)")
                        checked += 1
                    }
                    return checked
                }
            }
            var total = 0
            for try await n in group { total += n }
            return total
        }
        #expect(checked > 100, "most answers fell between two publications")
        #expect(m.itemPublisher.publish() >= 0)
        #expect(Self.servedRow(state, "i3") == Self.liveRow(state, "i3"))
    }

    @Test("with item updates off, items do not move and GET reports no count")
    func itemUpdatesOffKeepsItemsFixed() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: Self.configuration(itemUpdates: false), logger: quiet)
        let state = try m.registry.model("demo").current
        let row = Self.servedRow(state, "i3")
        _ = try await m.observe(model: "demo", Self.stream(50))
        #expect(state.itemLearner == nil)
        #expect(Self.servedRow(state, "i3") == row)
        #expect(try m.item(model: "demo", id: "i3").observations == nil)
    }

    /// Every user's full state and every item's live and served rows, as a manager holds them now.
    struct Captured: Equatable {
        var users: [UserWeights?]
        var live: [[Float]]
        var served: [[Float]]
        var version: Int

        /// Read before another manager starts on the same stores: a start may rewrite stored
        /// rows (putting back a snapshot cut short), which a cold user's state is read from.
        init(_ m: Manager) throws {
            let state = try m.registry.model("demo").current
            users = try (0..<72).map { try state.users.fullState("u\($0)") }
            live = (0..<40).map { ItemLearningTests.liveRow(state, "i\($0)") }
            served = (0..<40).map { ItemLearningTests.servedRow(state, "i\($0)") }
            version = state.version.number
        }
    }

    /// The two captures agree bit for bit, naming the first users and items that do not.
    static func expectSame(_ a: Captured, _ b: Captured, _ comment: String) {
        #expect(a.version == b.version)
        for u in 0..<72 where a.users[u] != b.users[u] { Issue.record("user u\(u) differs \(comment)") }
        for i in 0..<40 where a.live[i] != b.live[i] || a.served[i] != b.served[i] { Issue.record("item i\(i) differs \(comment)") }
    }

    @Test("a restart restores users and items bit for bit: from the version's start, after a snapshot, after a retrain",
          arguments: TrainedStore.Backend.durable)
    func restartIsExact(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let stream = Self.stream(600)
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        _ = try await m.observe(model: "demo", Array(stream[0..<200]))
        m.itemPublisher.publish()
        // A start replays the log over the version's first item states.
        var live = try Captured(m)
        let fromStart = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        fromStart.itemPublisher.publish()
        Self.expectSame(live, try Captured(fromStart), "from the start")
        try m.snapshotter.snapshot()
        _ = try await m.observe(model: "demo", Array(stream[200..<400]))
        m.itemPublisher.publish()
        live = try Captured(m)
        let afterSnapshot = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        afterSnapshot.itemPublisher.publish()
        Self.expectSame(live, try Captured(afterSnapshot), "after a snapshot")
        #expect(try t.reopen().snapshots.loadItemStates(model: "demo", version: 1, dimension: 5).count == 40)
    }

    @Test("a snapshot at one cut writes the users and the items learned since the cut before the other items")
    func usersAndItemsLearnedDuringASnapshotGoFirst() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(), logger: quiet)
        let stream = Self.stream(400, seed: 9)
        _ = try await m.observe(model: "demo", stream)
        let cut = try t.stores.log.lastSequence()
        let changed = Set(stream.map(\.uid)).sorted(), items = Set(stream.map(\.item)).sorted()
        #expect(items.count > 3 * Snapshotter.snapshotChunk)
        // The snapshot waits at its first write (the items users observed), its cut taken.
        let writes = faults.calls(.snapshotWrite)
        faults.hold(.snapshotWrite)
        let snapshot = Task { try await m.snapshotter.snapshotInBackground() }  // on a thread of its own
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(2)) }
        // Five users learn, each observing another item: users and items learned since the cut.
        let learnedUsers = [changed[0], changed[7], changed[20], changed[33], changed[40]]
        let learnedItems = [items[1], items[9], items[18], items[27], items[36]]
        _ = try await m.observe(model: "demo", zip(learnedUsers, learnedItems).map { ($0, $1, 3) })
        // One chunk of users, then one of items, is written; the next write fails.
        faults.failNext(.snapshotWrite, nth: 3)
        faults.release(.snapshotWrite)
        await #expect(throws: StorageError.self) { try await snapshot.value }
        let storedUsers = try changed.filter {
            try t.stores.snapshots.loadUserState(model: "demo", version: 1, uid: $0, dimension: 5)?.seq == cut
        }
        let storedItems = try t.stores.snapshots.loadItemStates(model: "demo", version: 1, dimension: 5).filter { $0.seq == cut }
        #expect(storedUsers.count == Snapshotter.snapshotChunk && Set(learnedUsers).isSubset(of: storedUsers), "\(storedUsers)")
        #expect(storedItems.count == Snapshotter.snapshotChunk && Set(learnedItems).isSubset(of: storedItems.map(\.item)),
                "\(storedItems.map(\.item))")
    }

    @Test("a snapshot at one cut stops when a version begins to replace its state, none starts until the install ends, and the next writes what it did not")
    func snapshotStopsWhileAVersionReplacesItsState() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(), logger: quiet)
        let model = try m.registry.model("demo")
        let stream = Self.stream(400, seed: 13)
        _ = try await m.observe(model: "demo", Array(stream[0..<300]))
        let cut = try t.stores.log.lastSequence()
        // Under way, held at its first write (its cut taken), when an install begins.
        let writes = faults.calls(.snapshotWrite)
        faults.hold(.snapshotWrite)
        let snapshot = Task { try await m.snapshotter.snapshotInBackground() }  // on a thread of its own
        while faults.calls(.snapshotWrite) == writes { try await Task.sleep(for: .milliseconds(2)) }
        model.beginReplacing()
        faults.release(.snapshotWrite)
        #expect(try await snapshot.value == 0)
        let atCut = try Set(stream[0..<300].map(\.uid)).filter {
            try t.stores.snapshots.loadUserState(model: "demo", version: 1, uid: $0, dimension: 5)?.seq == cut
        }
        #expect(atCut.isEmpty, "stopped before its first chunk: \(atCut.count) users written")
        // While the install lasts, none starts.
        let stopped = faults.calls(.snapshotWrite)
        #expect(try m.snapshotter.snapshot() == 0)
        #expect(faults.calls(.snapshotWrite) == stopped)
        model.endReplacing()
        _ = try await m.observe(model: "demo", Array(stream[300..<320]))
        #expect(try m.snapshotter.snapshot() > 0)
        m.itemPublisher.publish()
        let live = try Captured(m)
        // The floor is the log's end: a user or an item the stopped snapshot left unmarked would
        // come back as it was before it.
        let restarted = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        restarted.itemPublisher.publish()
        Self.expectSame(live, try Captured(restarted), "after a stopped snapshot and the next")
    }

    @Test("a rollback postpones a snapshot at one cut of the state it replaces, but not a second one")
    func rollbackPostponesOneSnapshot() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(snapshotObservations: 100),
                            logger: quiet)
        let model = try m.registry.model("demo")
        let stream = Self.stream(450, seed: 17)
        _ = try await m.observe(model: "demo", Array(stream[0..<150]))
        let job = try m.retrainer.start(model: "demo")
        _ = try await m.retrainer.wait(forJob: job, model: "demo")
        _ = try await m.observe(model: "demo", Array(stream[150..<200]))
        try m.snapshotter.snapshot()
        _ = try await m.observe(model: "demo", Array(stream[200..<250]))
        #expect(!model.isBeingReplaced)
        // The rollback waits at its first read of the catalogue; 50 observations are pending.
        let reads = faults.calls(.versionRead)
        faults.hold(.versionRead)
        let rollback = Task { try await m.installer.rollback(model: "demo", to: 1) }
        while faults.calls(.versionRead) == reads { try await Task.sleep(for: .milliseconds(2)) }
        #expect(model.isBeingReplaced)
        let writes = faults.calls(.snapshotWrite)
        #expect(try m.snapshotter.snapshot() == 0)
        #expect(faults.calls(.snapshotWrite) == writes)
        // Twice the interval pending: the snapshot runs beside the install.
        _ = try await m.observe(model: "demo", Array(stream[250..<450]))
        #expect(try m.snapshotter.snapshot() > 0)
        faults.release(.versionRead)
        try await rollback.value
        #expect(!model.isBeingReplaced && model.version.number == 1)
        #expect(try m.snapshotter.snapshot() > 0)
    }

    @Test("a snapshot cut short is put back at the next start: users and items restore as one cut",
          arguments: TrainedStore.Backend.durable)
    func interruptedSnapshotRestoresOneCut(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(), logger: quiet)
        let stream = Self.stream(400, seed: 9)
        _ = try await m.observe(model: "demo", Array(stream[0..<150]))
        try m.snapshotter.snapshot()
        _ = try await m.observe(model: "demo", Array(stream[150..<300]))
        // Users are written ten to a transaction: the third write fails, after two chunks of
        // users were written at the new cut.
        faults.failNext(.snapshotWrite, nth: 3)
        #expect(throws: StorageError.self) { try m.snapshotter.snapshot() }
        _ = try await m.observe(model: "demo", Array(stream[300..<400]))
        m.itemPublisher.publish()
        let live = try Captured(m)
        let restarted = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        restarted.itemPublisher.publish()
        Self.expectSame(live, try Captured(restarted), "after an interrupted snapshot")
    }

    @Test("the users and items a failed snapshot did not write are written by the next one",
          arguments: TrainedStore.Backend.durable)
    func failedSnapshotIsCompletedByTheNext(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(), logger: quiet)
        let stream = Self.stream(400, seed: 11)
        _ = try await m.observe(model: "demo", Array(stream[0..<300]))
        // The third write fails: two chunks of users were written, the rest and every item not.
        faults.failNext(.snapshotWrite, nth: 3)
        #expect(throws: StorageError.self) { try m.snapshotter.snapshot() }
        _ = try await m.observe(model: "demo", Array(stream[300..<320]))
        try m.snapshotter.snapshot()
        m.itemPublisher.publish()
        let live = try Captured(m)
        // The second snapshot's floor is the log's end: the start replays nothing, so a user or
        // an item neither snapshot wrote would come back as it was before the first.
        let restarted = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        restarted.itemPublisher.publish()
        Self.expectSame(live, try Captured(restarted), "after a failed snapshot and the next")
    }

    @Test("an item unknown until its first observation joins the catalogue, learns, and survives a start",
          arguments: TrainedStore.Backend.durable)
    func anUnknownItemJoinsTheCatalogue(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        let p = Predictor(registry: m.registry)
        #expect(throws: OspreyError.self) { try p.predict(model: "demo", uid: "u1", item: "fresh") }
        _ = try await m.observe(model: "demo", [("u1", "fresh", 5), ("u2", "fresh", 4)])
        let info = try m.item(model: "demo", id: "fresh")
        #expect(info.source == .online && info.observations == 2 && info.attributes.isEmpty && !info.hidden)
        m.itemPublisher.publish()
        let state = try m.registry.model("demo").current
        #expect(try p.predict(model: "demo", uid: "u3", item: "fresh").score == state.features.withFeatures(item: state.features.row(of: "fresh")!) { f, offset in
            offset + state.users.read("u3") { VectorKernels.dot($0!.weights, f, count: state.features.stride) }
        })
        try m.snapshotter.snapshot()
        _ = try await m.observe(model: "demo", [("u3", "fresh", 5), ("u4", "later", 2), ("u5", "i7", 3)])
        m.itemPublisher.publish()
        let live = try Captured(m)
        let rows = ["fresh", "later"].map { Self.liveRow(state, $0) }
        // A start finds "fresh" by its stored state and "later" by the log's replay.
        let restarted = try Manager(stores: try t.reopen(), configuration: Self.configuration(), logger: quiet)
        restarted.itemPublisher.publish()
        Self.expectSame(live, try Captured(restarted), "with items first known by an observation")
        let again = try restarted.registry.model("demo").current
        #expect(["fresh", "later"].map { Self.liveRow(again, $0) } == rows)
        #expect(try restarted.item(model: "demo", id: "fresh").observations == 3)
        // With item updates off, an unknown item stays unknown.
        let u = try TrainedStore()
        let off = try Manager(stores: u.stores, configuration: Self.configuration(itemUpdates: false), logger: quiet)
        _ = try await off.observe(model: "demo", [("u1", "fresh", 5)])
        #expect(throws: OspreyError.self) { try Predictor(registry: off.registry).predict(model: "demo", uid: "u1", item: "fresh") }
    }

    @Test("a retrain's new version starts its items from its training and keeps learning them")
    func retrainStartsItemsAgain() async throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        _ = try await m.observe(model: "demo", Self.stream(300))
        let job = try m.retrainer.start(model: "demo")
        _ = try await m.retrainer.wait(forJob: job, model: "demo")
        let state = try m.registry.model("demo").current
        #expect(state.version.number == 2)
        #expect(try m.item(model: "demo", id: "i3").observations == 0)
        let row = Self.liveRow(state, "i3")
        _ = try await m.observe(model: "demo", [("u1", "i3", 5)])
        #expect(Self.liveRow(state, "i3") != row)
        #expect(try m.item(model: "demo", id: "i3").source == .online)
        m.itemPublisher.publish()
        let live = try Captured(m)
        let restarted = try Manager(stores: t.stores, configuration: Self.configuration(), logger: quiet)
        restarted.itemPublisher.publish()
        Self.expectSame(live, try Captured(restarted), "after a retrain")
    }
}
