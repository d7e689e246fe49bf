import Foundation
import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// Competing versions (docs/architecture.md, "Competing versions"): a challenger serving beside the champion, sticky allocation by
/// split or bandit, per-version reward, promote, and restarts in the middle.
struct CompetitionTests {
    func users(_ t: TrainedStore) -> [String] { Array(Set(t.ratings.map(\.uid))).sorted() }

    @Test(arguments: TrainedStore.Backend.available)

    func aSplitChallengerIsStickyLearnsEverythingAndCanBePromoted(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let job = try m.retrainer.start(model: "demo", challenger: .split(0.5))
        #expect(try await m.retrainer.wait(forJob: job, model: "demo").phase == .done)
        let model = try m.registry.model("demo")
        #expect(model.version.number == 1, "the retrained version competes; it does not serve")
        let info = try #require(try m.info(model: "demo").competition)
        #expect(info.champion == 1 && info.challenger == 2 && info.allocation == .split(0.5))
        #expect(try t.stores.versions.versions(model: "demo").map(\.status) == [.serving, .challenger])

        let uids = users(t)
        let assigned = uids.map { model.state(for: $0).version.number }
        #expect(uids.map { model.state(for: $0).version.number } == assigned, "sticky")
        let share = Double(assigned.count { $0 == 2 }) / Double(uids.count)
        #expect(share > 0.3 && share < 0.7, "about half the users (saw \(share))")
        let arms = try #require(try m.info(model: "demo").competition).arms
        #expect(arms.map(\.users) == [assigned.count { $0 == 1 }, assigned.count { $0 == 2 }])
        let p = Predictor(registry: m.registry)
        for (uid, v) in zip(uids.prefix(10), assigned) { #expect(try p.predict(model: "demo", uid: uid, item: "i1").version == v) }

        // Both versions learn every observation, whoever serves the user.
        let uid = uids[0]
        let challenger = try #require(model.competition).challenger
        let before = (model.current.users.read(uid) { $0?.observations }, challenger.users.read(uid) { $0?.observations })
        try await m.observe(model: "demo", [(uid, "i2", 4.5), (uid, "i3", 1.0)])
        #expect(model.current.users.read(uid) { $0?.observations } == (before.0 ?? 0) + 2)
        #expect(challenger.users.read(uid) { $0?.observations } == (before.1 ?? 0) + 2)
        let learned = try challenger.users.fullState(uid)?.ridge

        // A restart restores the competition and the challenger's weights bit for bit.
        try await m.shutdown()
        let r = try Manager(stores: try t.reopen(), logger: quiet)
        let restored = try #require(try r.registry.model("demo").competition)
        #expect(try restored.challenger.users.fullState(uid)?.ridge == learned)
        #expect(uids.map { try! r.registry.model("demo").state(for: $0).version.number } == assigned)

        // Promote: the challenger serves everyone, with what it learned.
        #expect(try r.installer.promote(model: "demo") == 2)
        #expect(try r.registry.model("demo").competition == nil)
        #expect(try r.registry.model("demo").current.users.fullState(uid)?.ridge == learned)
        #expect(throws: OspreyError.self) { try r.installer.promote(model: "demo") }
        try await r.shutdown()
        let again = try Manager(stores: try t.reopen(), logger: quiet)
        #expect(try again.registry.model("demo").version.number == 2 && again.registry.model("demo").competition == nil)
        #expect(try t.stores.versions.versions(model: "demo").map(\.status) == [.retired, .serving])
    }

    @Test func competitionsAreCheckedAndStop() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        await #expect(throws: OspreyError.self) { try await m.installer.startCompetition(model: "demo", challenger: 1, allocation: .thompson) }
        await #expect(throws: OspreyError.self) { try await m.installer.startCompetition(model: "demo", challenger: 7, allocation: .thompson) }
        #expect(throws: OspreyError.self) { try m.installer.stopCompetition(model: "demo") }
        #expect(throws: OspreyError.self) { try TrafficAllocation.parse("split(1.5)") }
        #expect(try TrafficAllocation.parse(" Split(0.25) ") == .split(0.25))
        let job = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: job, model: "demo").version == 2)
        try await m.installer.startCompetition(model: "demo", challenger: 1, allocation: .split(0.3))
        await #expect(throws: OspreyError.self) { try await m.installer.startCompetition(model: "demo", challenger: 1, allocation: .thompson) }
        await #expect(throws: OspreyError.self) { try await m.installer.rollback(model: "demo", to: 1) }
        #expect(throws: OspreyError.self) { try m.retrainer.start(model: "demo", challenger: .thompson) }
        try m.installer.stopCompetition(model: "demo")
        #expect(try m.info(model: "demo").competition == nil)
        #expect(users(t).allSatisfy { (try? m.registry.model("demo").state(for: $0).version.number) == 2 })
        #expect(try t.stores.versions.versions(model: "demo").map(\.status) == [.retired, .serving])
    }

    /// A bandit allocation moves new users to the version whose answers earn more.
    @Test func thompsonAllocationShiftsUsersToTheBetterVersion() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let job = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: job, model: "demo").version == 2)
        try await m.installer.startCompetition(model: "demo", challenger: 1, allocation: .thompson)
        var noise = SplitMix64(seed: 11)
        var late = [0, 0]
        var seen: [String: Int] = [:]
        for n in 0..<400 {
            let uid = "visitor-\(n)"
            let a = try m.explorer.topK(model: "demo", uid: uid, k: 1, items: nil)
            seen[uid] = a.version
            if n >= 200 { late[a.version == 1 ? 1 : 0] += 1 }
            // The challenger's answers are clicked more: reward 1 against 0.5, noise σ = 0.5.
            let reward = (a.version == 1 ? 1.0 : 0.5) + 0.5 * noise.nextGaussian()
            try await m.observe(model: "demo", [Feedback(uid: uid, item: a.items[0].item, label: reward, eventId: a.eventId)])
        }
        let info = try #require(try m.info(model: "demo").competition)
        // The share is a posterior probability whose spread depends on the bandit's own (unseeded)
        // draws: how often it still tried the loser. Even arms would give 0.5.
        #expect(info.challengerShare > 0.75, "share \(info.challengerShare)")
        #expect(late[1] > 150, "most of the last 200 new users went to the challenger (\(late))")
        let arms = Dictionary(uniqueKeysWithValues: info.arms.map { ($0.version, $0) })
        #expect(arms[1]!.users + arms[2]!.users == 400 && arms[1]!.feedback + arms[2]!.feedback == 400)
        #expect(abs(arms[1]!.meanReward! - 1) < 0.15 && arms[2]!.feedback > 0)
        // (The loser's mean is not checked: a bandit stops sampling an arm that looked bad early,
        // so its few rewards are biased low.)
        // Sticky, across a restart too: allocations are stored, rewards recounted from the log.
        try await m.shutdown()
        let r = try Manager(stores: try t.reopen(), logger: quiet)
        let model = try r.registry.model("demo")
        #expect(seen.allSatisfy { model.state(for: $0.key).version.number == $0.value })
        let restored = try #require(try r.info(model: "demo").competition)
        #expect(restored.arms.map(\.feedback) == info.arms.map(\.feedback))
        #expect(restored.arms.map(\.users) == info.arms.map(\.users))
    }

    /// Several models (one per campaign, say) share user ids and learn independently.
    @Test func modelsShareUserIds() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let result = try Trainer(configuration: .init(factors: 3, lambda: 1, iterations: 3, seed: 5))
            .train(model: "campaign-b", number: 1, parent: nil, ratings: t.ratings)
        try t.stores.storeVersion(result, reflecting: try t.stores.log.lastSequence(), trainingRatings: t.ratings, serve: true)
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid
        let b = try p.predict(model: "campaign-b", uid: uid, item: "i1").score
        let a = try p.predict(model: "demo", uid: uid, item: "i1").score
        try await m.observe(model: "demo", [(uid, "i1", a + 3)])
        #expect(try p.predict(model: "demo", uid: uid, item: "i1").score > a)
        #expect(try p.predict(model: "campaign-b", uid: uid, item: "i1").score == b, "the other model's user is untouched")
        #expect(try m.info(model: "campaign-b", uid: uid).observations == 0)
    }
}

extension CompetitionTests {
    /// A challenger learns an observation even when the champion's rebuild of the (cold) user
    /// fails: the champion replays it at the user's next rebuild, the challenger must not miss it.
    @Test func aChallengerLearnsWhatTheChampionCouldNot() throws {
        let t = try TrainedStore()
        let m = try Manager(stores: t.stores, logger: quiet)
        let version = try m.registry.model("demo").current.version
        let failing = UserWeightStore(stride: version.features.stride, hotUsers: 0, rebuild: { _, _ in
            throw StorageError(.io, "injected: the user's row cannot be read")
        })
        failing.insertCold(StoredWeights(uid: "u", weights: version.prior, observations: 0, runningLoss: nil, bootstrapped: false, seq: 0))
        let challenger = ServingState(version: version, users: UserWeightStore(stride: version.features.stride))
        let factory = RecordedMetrics().factory
        let model = ServedModel(state: ServingState(version: version, users: failing), observations: 0,
                                metrics: ModelMetrics(model: "demo", featureCache: false, factory: factory))
        model.competition = Competition(challenger: challenger, allocation: .split(0.5), since: 0,
                                        metrics: CompetitionMetrics(model: "demo", factory: factory), persist: { _, _ in })
        let item = version.features.catalog.ids[0]
        #expect(throws: StorageError.self) {
            try model.learn(LoggedObservation(seq: 1, observation: Observation(model: "demo", uid: "u", item: item, label: 4)))
        }
        failing.read("u") { #expect($0?.observations == 0, "the champion could not learn it") }
        challenger.users.read("u") { #expect($0?.observations == 1, "the challenger did") }
    }
}
