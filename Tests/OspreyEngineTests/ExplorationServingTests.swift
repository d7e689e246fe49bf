import Foundation
import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// Exploring top-k answers, the decision log, feedback joined by event id, and off-policy
/// evaluation over the server's own log (docs/architecture.md, "Exploration and the decision log").
struct ExplorationServingTests {
    let candidates = (1...10).map { "i\($0)" }

    @Test func thePolicyIsStoredAndEpsilonGreedyPropensitiesAreExact() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        try m.exploration.setPolicy(model: "demo", .epsilonGreedy(0.5))
        let restarted = try Manager(stores: try t.reopen(), logger: quiet)
        #expect(try restarted.registry.model("demo").exploration == .epsilonGreedy(0.5))
        #expect(try restarted.info(model: "demo").exploration == .epsilonGreedy(0.5))

        let uid = t.ratings[0].uid
        let greedy = try Predictor(registry: m.registry).topK(model: "demo", uid: uid, k: 2, items: candidates)
        let greedyItems = Set(greedy.items.map(\.item))
        var ids = Set<String>()
        var explored = 0
        for _ in 0..<200 {
            let a = try m.explorer.topK(model: "demo", uid: uid, k: 2, items: candidates)
            #expect(a.policy == .epsilonGreedy(0.5) && a.items.count == 2)
            ids.insert(a.eventId ?? "")
            for shown in a.items {
                if greedyItems.contains(shown.item) {
                    #expect(shown.propensity == 0.5 && !shown.explored)
                } else {
                    explored += 1
                    #expect(shown.propensity == 0.5 / 8 && shown.explored, "ε/(N−k) for a drawn item")
                }
            }
        }
        #expect(ids.count == 200 && !ids.contains(""), "every answer has its own event id")
        #expect(explored > 120 && explored < 280, "about half the 400 slots explore (saw \(explored))")
        // explore: false is the greedy ranking, propensity 1.
        let pure = try m.explorer.topK(model: "demo", uid: uid, k: 2, items: candidates, explore: false)
        #expect(pure.policy == .greedy && pure.items.map(\.item) == greedy.items.map(\.item))
        #expect(pure.items.allSatisfy { $0.propensity == 1 && !$0.explored })
    }

    @Test func linUCBRanksByTheUpperBoundOfADirectSolve() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let alpha = 2.0
        try m.exploration.setPolicy(model: "demo", .linUCB(alpha))
        let uid = t.ratings[0].uid
        let answer = try m.explorer.topK(model: "demo", uid: uid, k: 10, items: candidates)
        let state = try m.registry.model("demo").current
        let ridge = try #require(try state.users.fullState(uid)?.ridge)
        let v = state.version
        let d = ridge.dimension
        // Reference: u = A⁻¹f by Gaussian elimination on A in Double; ucb = score + α·sqrt(fᵀu).
        func ucb(_ item: String) -> Double {
            let row = v.features.catalog.row(of: item)!
            var f = [Double](repeating: 0, count: d)
            var offset: Float = 0
            v.features.withFeatures(item: row) { p, o in
                for i in 0..<d { f[i] = Double(p[i]) }
                offset = o
            }
            var a = ridge.gramMatrix(), b = f
            for c in 0..<d {
                for r in (c + 1)..<d {
                    let factor = a[r * d + c] / a[c * d + c]
                    for j in c..<d { a[r * d + j] -= factor * a[c * d + j] }
                    b[r] -= factor * b[c]
                }
            }
            var u = [Double](repeating: 0, count: d)
            for r in stride(from: d - 1, through: 0, by: -1) {
                var x = b[r]
                for j in (r + 1)..<max(r + 1, d) { x -= a[r * d + j] * u[j] }
                u[r] = x / a[r * d + r]
            }
            let score = Double(offset) + zip(ridge.weights.prefix(d), f).reduce(0) { $0 + Double($1.0) * $1.1 }
            return score + alpha * zip(f, u).reduce(0) { $0 + $1.0 * $1.1 }.squareRoot()
        }
        let expected = candidates.sorted { ucb($0) > ucb($1) }
        #expect(answer.items.map(\.item) == expected)
        for shown in answer.items {
            let reported = try #require(shown.exploring)
            #expect(abs(Double(reported) - ucb(shown.item)) < 1e-3 * max(1, abs(ucb(shown.item))))
            #expect(shown.propensity == 1)
        }
    }

    @Test func thompsonAnswersTheWholeCatalogueFromAShortlist() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(exploration: .init(shortlist: 12, propensitySamples: 32)),
                            logger: quiet)
        try m.exploration.setPolicy(model: "demo", .thompson(1))
        let uid = t.ratings[0].uid
        let greedy = try Predictor(registry: m.registry).topK(model: "demo", uid: uid, k: 12, items: nil)
        let answer = try m.explorer.topK(model: "demo", uid: uid, k: 3, items: nil)
        #expect(answer.items.count == 3)
        #expect(answer.items.allSatisfy { greedy.items.map(\.item).contains($0.item) }, "chosen from the greedy shortlist")
        #expect(answer.items.allSatisfy { $0.exploring != nil && ($0.propensity ?? 0) > 0 && ($0.propensity ?? 2) <= 1 })
        await m.decisions.flushed()
        let id = try #require(answer.eventId)
        let logged = try #require(try t.stores.decisions.decision(eventId: id))
        #expect(logged.candidates == greedy.items.map(\.item), "the shortlist is logged as the candidates")
        #expect(logged.items == answer.items && logged.policy == "thompson(1.0)")
    }

    @Test(arguments: TrainedStore.Backend.available)

    func feedbackIsJoinedByEventIdAndChecked(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        try m.exploration.setPolicy(model: "demo", .epsilonGreedy(1))
        let uid = t.ratings[0].uid, other = t.ratings.first { $0.uid != uid }!.uid
        let answer = try m.explorer.topK(model: "demo", uid: uid, k: 1, items: candidates)
        let id = try #require(answer.eventId)
        let item = answer.items[0].item
        #expect(answer.items[0].explored, "ε = 1 always explores")
        // Named while still buffered: found, joined, and it feeds the exploration pool.
        try await m.observe(model: "demo", [Feedback(uid: uid, item: item, label: 4, eventId: id)])
        #expect(try m.registry.model("demo").current.quality.explorationScored == 1)
        await #expect(throws: OspreyError.self) {
            try await m.observe(model: "demo", [Feedback(uid: other, item: item, label: 4, eventId: id)])
        }
        await #expect(throws: OspreyError.self) {
            try await m.observe(model: "demo", [Feedback(uid: uid, item: item, label: 4, eventId: "no-such-event")])
        }
        #expect(try t.stores.log.observationCount(model: "demo") == 1, "rejected calls log nothing")
        try await m.shutdown()
        // After a restart the decision is read from the store, and the join from the log.
        let restarted = try Manager(stores: try t.reopen(), logger: quiet)
        #expect(try restarted.decisions.lookup(id)?.items == answer.items)
        #expect(try t.stores.log.feedback(model: "demo")[id] == DecisionFeedback(item: item, label: 4, seq: 1))
        #expect(try restarted.info(model: "demo").decisions == 1)
        try await restarted.observe(model: "demo", [Feedback(uid: uid, item: item, label: 5, eventId: id)])
    }

    /// A simulated client: rewards are a fixed truth (the version's initial scores); decisions
    /// logged by ε-greedy through the server; the greedy target's estimated value is checked
    /// against its true value on the same contexts, computed directly.
    @Test func offPolicyEstimatesOverTheServerLogCoverTheTrueValue() async throws {
        let t = try TrainedStore(users: 40, items: 30, ratings: 500)
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        try m.exploration.setPolicy(model: "demo", .epsilonGreedy(0.4))
        let truth = Predictor(registry: try Manager(stores: try t.reopen(), logger: quiet).registry)
        func reward(_ uid: String, _ item: String) throws -> Float { try truth.predict(model: "demo", uid: uid, item: item).score }
        let users = Array(Set(t.ratings.map(\.uid))).sorted()
        let catalogue = try m.registry.model("demo").version.features.catalog.ids
        var rng = SplitMix64(seed: 3)
        var batch: [Feedback] = []
        for n in 0..<3000 {
            let uid = users[Int(rng.next() % UInt64(users.count))]
            var pool = catalogue
            for i in stride(from: pool.count - 1, to: 0, by: -1) { pool.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            let a = try m.explorer.topK(model: "demo", uid: uid, k: 1, items: Array(pool.prefix(6)))
            if n % 10 != 9 {   // some decisions get no feedback
                batch.append(Feedback(uid: uid, item: a.items[0].item, label: Double(try reward(uid, a.items[0].item)), eventId: a.eventId))
            }
            if batch.count == 100 {
                try await m.observe(model: "demo", batch)
                batch = []
            }
        }
        try await m.observe(model: "demo", batch)
        let e = try await m.exploration.evaluate(model: "demo", policy: .greedy, limit: 10_000)
        #expect(e.decisions == 3000 && e.used == 2700 && e.skipped.noFeedback == 300)
        // The true value: greedy on today's weights picks the best-scored candidate; its reward.
        let feedback = try t.stores.log.feedback(model: "demo")
        var total = 0.0
        for d in try t.stores.decisions.decisions(model: "demo", limit: 10_000) where feedback[d.eventId] != nil {
            let best = try Predictor(registry: m.registry).topK(model: "demo", uid: d.uid, k: 1, items: d.candidates)
            total += Double(try reward(d.uid, best.items[0].item))
        }
        let trueValue = total / 2700
        let logged = try #require(e.loggedReward)
        #expect(trueValue > logged, "greedy beats the ε-greedy logger here")
        for estimate in e.estimates where estimate.estimator != "dm" {
            #expect(abs(estimate.value - trueValue) <= 3.3 * estimate.standardError,
                    "\(estimate.estimator) \(estimate.value) ± \(estimate.standardError) vs true \(trueValue)")
        }
    }
}

extension ExplorationServingTests {
    /// An off-policy evaluation runs one at a time per model, within a cap on its work.
    @Test func evaluationsRunOneAtATimeWithinACap() async throws {
        let t = try TrainedStore(), faults = Faults()
        let m = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet)
        _ = try m.explorer.topK(model: "demo", uid: "u1", k: 3, items: nil)
        // The asked-for draws are lowered to the cap: 20M draws over a million decisions.
        #expect(try await m.exploration.evaluate(model: "demo", policy: .greedy, limit: 1_000_000, propensitySamples: 10_000).samples == 20)
        #expect(try await m.exploration.evaluate(model: "demo", policy: .greedy, limit: 100, propensitySamples: 64).samples == 64)
        faults.hold(.decisionRead)
        let reads = faults.calls(.decisionRead)
        let first = Task { try await m.exploration.evaluate(model: "demo", policy: .greedy) }
        while faults.calls(.decisionRead) == reads { try await Task.sleep(for: .milliseconds(1)) }
        // A second one is refused at once, while the first still waits (bounded: were it let in,
        // it would wait on the held read too).
        let outcome = Mutex<String?>(nil)
        let second = Task {
            do {
                _ = try await m.exploration.evaluate(model: "demo", policy: .greedy)
                outcome.withLock { $0 = "ran beside the first" }
            } catch {
                outcome.withLock { $0 = (error as? OspreyError)?.code.rawValue ?? "\(error)" }
            }
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while outcome.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        #expect(outcome.withLock { $0 } == "conflict")
        faults.release(.decisionRead)
        await second.value
        #expect(try await first.value.decisions == 1)
        #expect(try await m.exploration.evaluate(model: "demo", policy: .greedy).decisions == 1, "the next one runs")
    }
}
