import Foundation
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// Retrains whose gather, train and store steps run in a worker (``RetrainWorker``; `serve
/// --retrain-in worker`): the serving process only loads and swaps in what the worker stored.
/// Here the worker's steps run in this process on the stores opened again, as a worker process
/// opens them; scripts/retrain-worker-test.py runs the real child process.
struct RetrainWorkerTests {
    /// Runs ``RetrainWorker/run(_:stores:logger:report:isCancelled:)`` on `stores()`, with hooks
    /// that act before the steps and after the version is stored.
    final class InProcessWorker: RetrainWorkerLauncher {
        let stores: @Sendable () throws -> Stores
        let before: @Sendable (RetrainWorker.Request) throws -> Void
        let after: @Sendable (RetrainWorker.Request, Int) throws -> Void
        let requests = Mutex<[RetrainWorker.Request]>([])
        let events = Mutex<[RetrainWorker.Event]>([])

        init(stores: @escaping @Sendable () throws -> Stores, before: @escaping @Sendable (RetrainWorker.Request) throws -> Void = { _ in },
             after: @escaping @Sendable (RetrainWorker.Request, Int) throws -> Void = { _, _ in }) {
            self.stores = stores
            self.before = before
            self.after = after
        }

        func run(_ request: RetrainWorker.Request, report: @escaping @Sendable (RetrainWorker.Event) -> Void,
                 isCancelled: @escaping @Sendable () -> Bool) throws -> Int {
            requests.withLock { $0.append(request) }
            try before(request)
            let number = try RetrainWorker.run(request, stores: try stores(), logger: quiet, report: { event in
                self.events.withLock { $0.append(event) }
                report(event)
            }, isCancelled: isCancelled)
            try after(request, number)
            return number
        }
    }

    /// A manager set once it exists, for hooks that act on it.
    final class ManagerBox: Sendable {
        let manager = Mutex<Manager?>(nil)
        var value: Manager { manager.withLock { $0! } }

        /// Starts a manager on `t`'s stores whose retrains run in `worker`, and keeps it.
        func start(_ t: TrainedStore, worker: InProcessWorker) throws -> Manager {
            var configuration = Manager.Configuration()
            configuration.retrainWorker = worker
            let m = try Manager(stores: try t.reopen(), configuration: configuration, logger: quiet)
            manager.withLock { $0 = m }
            return m
        }
    }

    static let pairs = [("u1", "i2"), ("u3", "i0"), ("u7", "i5"), ("newbie", "i1")]

    /// A fresh copy of the model, a user only the log knows, a retrain (in a worker when
    /// `worker` is given one) and what it serves afterwards: every user's weights, by uid.
    static func retrain(_ t: TrainedStore, itemUpdates: Bool = false,
                        worker: ((@escaping @Sendable () throws -> Stores) -> InProcessWorker)?)
        async throws -> (manager: Manager, job: RetrainJob, weights: [String: [Float]], worker: InProcessWorker?) {
        var configuration = Manager.Configuration(itemUpdates: itemUpdates)
        let launcher = worker?({ try t.reopen() })
        configuration.retrainWorker = launcher
        let m = try Manager(stores: try t.reopen(), configuration: configuration, logger: quiet)
        for n in 0..<6 { try await m.observe(model: "demo", [("newbie", "i\(n)", Float(n % 5))]) }
        try await m.observe(model: "demo", [("u1", "i3", 5)])
        let id = try m.retrainer.start(model: "demo")
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        let users = try m.registry.model("demo").current.users
        var weights: [String: [Float]] = [:]
        for uid in Set(t.ratings.map(\.uid)).union(["newbie"]) {
            weights[uid] = try #require(try users.fullState(uid)).ridge.weights
        }
        return (m, job, weights, launcher)
    }

    @Test(arguments: TrainedStore.Backend.available)
    func aWorkersVersionServesBitForBitWhatAnInProcessRetrainServes(backend: TrainedStore.Backend) async throws {
        let here = try TrainedStore(backend: backend), there = try TrainedStore(backend: backend)
        defer { here.remove(); there.remove() }
        let inProcess = try await Self.retrain(here, worker: nil)
        let inWorker = try await Self.retrain(there, worker: { InProcessWorker(stores: $0) })

        #expect(inWorker.job.phase == .done && inWorker.job.version == 2, "\(inWorker.job)")
        #expect(inWorker.job.iteration == inProcess.job.iteration && inWorker.job.iteration > 0, "the worker's iterations show on the job")
        #expect(inWorker.weights.count == inProcess.weights.count)
        for (uid, w) in inProcess.weights { #expect(inWorker.weights[uid] == w, "user \(uid)") }
        let p = Predictor(registry: inProcess.manager.registry), q = Predictor(registry: inWorker.manager.registry)
        for (uid, item) in Self.pairs {
            #expect(try p.predict(model: "demo", uid: uid, item: item).score == q.predict(model: "demo", uid: uid, item: item).score)
        }
        let a = try inProcess.manager.registry.model("demo").version.metadata
        let b = try inWorker.manager.registry.model("demo").version.metadata
        #expect(a.lambda == b.lambda && a.ratings == b.ratings && a.trainedThroughSeq == b.trainedThroughSeq && b.trigger == "request")

        let worker = try #require(inWorker.worker)
        let request = try #require(worker.requests.withLock { $0.first })
        #expect(request.parent == 1 && request.through == 7 && request.server == getpid() && request.threads == 1)
        #expect(request.validationFraction == Manager.Configuration().monitor.validationFraction)
        let events = worker.events.withLock { $0 }
        #expect(events.contains { $0.phase == "training" } && events.contains { $0.iteration == b.iterations })
        // The items users observed before the retrain are recorded before the worker gathers:
        // the version's snapshot says it reflects them.
        #expect(try there.stores.snapshots.observedItems(model: "demo", uid: "newbie").sorted() == (0..<6).map { "i\($0)" })
    }

    /// With item updates, the worker also starts the new version's items' states and stores
    /// them, so the server reads them rather than computing them from every training rating;
    /// they are the states an in-process retrain starts, bit for bit.
    @Test(arguments: TrainedStore.Backend.available)
    func withItemUpdatesTheWorkerStartsTheItemsStates(backend: TrainedStore.Backend) async throws {
        let here = try TrainedStore(backend: backend), there = try TrainedStore(backend: backend)
        defer { here.remove(); there.remove() }
        let storedByWorker = Mutex<Int?>(nil)
        let inProcess = try await Self.retrain(here, itemUpdates: true, worker: nil)
        let inWorker = try await Self.retrain(there, itemUpdates: true, worker: { stores in
            InProcessWorker(stores: stores, after: { request, number in
                let v = try stores().versions.loadVersion(model: request.model, number: number)
                let states = try stores().snapshots.loadItemStates(model: request.model, version: number,
                                                                    dimension: ItemRidge(version: v).parameterCount)
                storedByWorker.withLock { $0 = states.count }
            })
        })
        #expect(inWorker.job.phase == .done && inWorker.job.version == 2, "\(inWorker.job)")
        #expect(try #require(inWorker.worker).requests.withLock { $0.map(\.itemStates) } == [true])
        let a = try inProcess.manager.registry.model("demo").current, b = try inWorker.manager.registry.model("demo").current
        let trained = b.version.features.catalog.ids
        #expect(storedByWorker.withLock { $0 } == trained.count, "the worker stored every trained item's state")
        #expect(!trained.isEmpty && a.version.features.catalog.ids == trained)
        for id in trained {
            #expect(ItemLearningTests.liveRow(a, id) == ItemLearningTests.liveRow(b, id), "item \(id)")
        }
        // Without item updates it stores none.
        let off = try TrainedStore(backend: backend)
        defer { off.remove() }
        let plain = try await Self.retrain(off, worker: { InProcessWorker(stores: $0) })
        #expect(try #require(plain.worker).requests.withLock { $0.map(\.itemStates) } == [false])
        let v = try off.stores.versions.loadVersion(model: "demo", number: 2)
        #expect(try off.stores.snapshots.loadItemStates(model: "demo", version: 2, dimension: ItemRidge(version: v).parameterCount).isEmpty)
    }

    /// A user erased while the worker trains may be in what it stored (its rows written after
    /// the erasure, its ratings in the items' fit): that version is deleted at once, and the
    /// retrain trains again without the user.
    @Test(arguments: TrainedStore.Backend.available)
    func anErasureWhileTheWorkerRunsDiscardsItsVersionAndTrainsAgain(backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let box = ManagerBox()
        let firstRatings = Mutex<Int?>(nil)
        let worker = InProcessWorker(stores: { try t.reopen() }, before: { _ in
            if firstRatings.withLock({ $0 }) != nil {
                // The second attempt starts after the first version went: its rows too.
                let numbers = try t.stores.versions.versions(model: "demo").map(\.number)
                let rows = try t.stores.snapshots.userCount(model: "demo", version: 2)
                #expect(numbers == [1] && rows == 0, "\(numbers), \(rows) rows")
            }
        }, after: { request, number in
            guard firstRatings.withLock({ $0 }) == nil else { return }
            firstRatings.withLock { $0 = (try? t.stores.versions.loadVersion(model: "demo", number: number))?.metadata.ratings }
            _ = try box.value.eraseUser(model: "demo", uid: "u3")
        })
        let m = try box.start(t, worker: worker)
        let id = try m.retrainer.start(model: "demo")
        let job = try await m.retrainer.wait(forJob: id, model: "demo")

        #expect(job.phase == .done && job.version == 2, "\(job)")
        #expect(worker.requests.withLock { $0.count } == 2, "trained again after the erasure")
        let version = try m.registry.model("demo").version
        let u3 = t.ratings.filter { $0.uid == "u3" }.count
        let first = try #require(firstRatings.withLock { $0 })
        #expect(u3 > 0 && version.metadata.ratings == first - u3)
        #expect(try t.stores.snapshots.loadUserState(model: "demo", version: 2, uid: "u3", dimension: version.dimension) == nil)
    }

    @Test func aJobCancelledWhileTheWorkerTrainsStopsItAndServesOn() async throws {
        let t = try TrainedStore()
        let box = ManagerBox()
        // Cancelled before the worker starts: it stops at its first check, before storing.
        let worker = InProcessWorker(stores: { try t.reopen() }, before: { request in
            _ = try box.value.retrainer.cancel(job: request.job, model: "demo")
        })
        let m = try box.start(t, worker: worker)
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.phase == .cancelled, "\(job)")
        #expect(try m.registry.model("demo").version.number == 1)
        #expect(try t.stores.versions.versions(model: "demo").map(\.number) == [1], "nothing stored")
    }

    @Test func aJobCancelledAfterTheWorkerStoredDiscardsTheVersion() async throws {
        let t = try TrainedStore()
        let box = ManagerBox()
        let worker = InProcessWorker(stores: { try t.reopen() }, after: { request, _ in
            _ = try box.value.retrainer.cancel(job: request.job, model: "demo")
        })
        let m = try box.start(t, worker: worker)
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.phase == .cancelled, "\(job)")
        #expect(try m.registry.model("demo").version.number == 1)
        #expect(try t.stores.versions.versions(model: "demo").map(\.number) == [1])
        #expect(try t.stores.snapshots.userCount(model: "demo", version: 2) == 0, "its users' rows went with it")
    }

    @Test func aFailedWorkerFailsTheJobAndTheServingVersionStays() async throws {
        struct Broken: Error, CustomStringConvertible { var description: String { "the worker ran out of disk" } }
        let t = try TrainedStore()
        var configuration = Manager.Configuration()
        configuration.retrainWorker = InProcessWorker(stores: { try t.reopen() }, before: { _ in throw Broken() })
        let m = try Manager(stores: try t.reopen(), configuration: configuration, logger: quiet)
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.phase == .failed && job.error?.contains("the worker ran out of disk") == true, "\(job)")
        #expect(try m.registry.model("demo").version.number == 1)
    }

    @Test func theWorkerRefusesToTrainFromAVersionThatNoLongerServes() throws {
        let t = try TrainedStore()
        let request = RetrainWorker.Request(model: "demo", job: 1, trigger: "request", through: 0, parent: 7, server: getpid(),
                                            threads: 1, window: nil, validationFraction: 0.02)
        let error = #expect(throws: OspreyError.self) {
            try RetrainWorker.run(request, stores: t.stores, logger: quiet, report: { _ in }, isCancelled: { false })
        }
        #expect(error?.code == .conflict && error?.message.contains("version 1 of `demo` serves now, not version 7") == true)
        var other = request
        other.model = "nope"
        let unknown = #expect(throws: OspreyError.self) {
            try RetrainWorker.run(other, stores: t.stores, logger: quiet, report: { _ in }, isCancelled: { false })
        }
        #expect(unknown?.code == .unknownModel)
    }
}
