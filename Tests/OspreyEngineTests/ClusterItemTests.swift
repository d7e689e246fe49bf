import Foundation
import OspreyMath
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// Items learning online on several nodes (docs/architecture.md, "Items on several nodes"): each
/// node publishes the sums of what its users taught each item, folds in the others', and nodes
/// that have read the same publications hold the same item states, whatever their order.
struct ClusterItemTests {
    static let configuration = Manager.Configuration(monitor: .init(validationFraction: 0), itemUpdates: true)

    /// The contribution store of `t`'s backend: PostgreSQL's table, or one in memory.
    static func contributions(_ t: TrainedStore) throws -> any ItemContributionStore {
        if let postgres = t.postgres { return try PostgresItemContributions(database: postgres.database) }
        return MemoryItemContributions()
    }

    /// Nodes `a` and `b` with item updates, exchanging through `contributions`, settled: each
    /// serves its buckets.
    static func pair(_ stores: Stores, reopened: Stores, contributions: any ItemContributionStore) throws -> ClusterTests.Pair {
        let pair = try ClusterTests.Pair(stores, reopened: reopened, configuration: configuration, contributions: contributions)
        pair.settle()
        return pair
    }

    /// Every item's live row and online observation count on `m`'s serving state, by id.
    static func items(_ m: Manager) throws -> [String: [Float]] {
        let state = try m.registry.model("demo").current
        var out: [String: [Float]] = [:]
        for row in 0..<state.features.trained {
            let id = state.features.id(of: row)
            out[id] = ItemLearningTests.liveRow(state, id) + [Float(state.itemLearner!.observations(row: row))]
        }
        return out
    }

    @Test(arguments: ClusterTests.backends)
    func nodesThatReadTheSamePublicationsHoldTheSameItems(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let contributions = try Self.contributions(t)
        let pair = try Self.pair(t.stores, reopened: try t.reopen(), contributions: contributions)
        let stream = ItemLearningTests.stream(300)
        try await pair.observe(Array(stream[..<150]))
        // a publishes first, then b publishes and reads a's, then a reads b's.
        #expect(pair.a.itemExchange!.exchangeOnce().published > 0)
        let bFirst = pair.b.itemExchange!.exchangeOnce()
        #expect(bFirst.published > 0 && bFirst.read > 0)
        pair.a.itemExchange!.exchangeOnce()
        try #require(try Self.items(pair.a) == Self.items(pair.b), "bit for bit, after one exchange each way")
        let counts = try Self.items(pair.a).values.map { Int($0.last!) }.reduce(0, +)
        #expect(counts == 150, "every observation learned once, by its user's node, and folded on the other")

        // The other way round: b's publication reaches a before a publishes its own.
        try await pair.observe(Array(stream[150...]))
        pair.b.itemExchange!.exchangeOnce()
        pair.a.itemExchange!.exchangeOnce()
        pair.b.itemExchange!.exchangeOnce()
        #expect(try Self.items(pair.a) == Self.items(pair.b))
        #expect(try Self.items(pair.a).values.map { Int($0.last!) }.reduce(0, +) == 300)
        // Reading again changes nothing: a publication merges once.
        let before = try Self.items(pair.a)
        #expect(pair.a.itemExchange!.exchangeOnce() == .init(published: 0, read: 0, solved: 0))
        #expect(try Self.items(pair.a) == before)

        // A node started now (a third, or one restarted) folds every publication and holds the
        // same items; a restarted node's publications continue from its own.
        let c = try pair.node("c", try t.reopen())
        #expect(try Self.items(c) == before)
        let a2 = try pair.node("a", try t.reopen())
        #expect(try Self.items(a2) == before)
    }

    @Test func aRestartedNodeContinuesFromWhatItPublished() async throws {
        let t = try TrainedStore()
        let contributions = MemoryItemContributions()
        let pair = try Self.pair(t.stores, reopened: try t.reopen(), contributions: contributions)
        let ofA = (0..<60).map { "u\($0)" }.filter { ClusterTests.owner(of: $0, live: ["a", "b"]) == "a" }
        try await pair.a.observe(model: "demo", ofA.prefix(5).map { ($0, "i3", 4) })
        pair.a.itemExchange!.exchangeOnce()
        // a stops and starts again; it learns more of the same item and publishes.
        let a2 = try pair.node("a", t.stores)
        for m in [a2, pair.b, a2] { _ = m.heartbeats!.beatOnce() }
        pair.membership.advance(by: ClusterTests.configuration("a").handoverDelay)
        for m in [a2, pair.b, a2] { _ = m.heartbeats!.beatOnce() }
        try await a2.observe(model: "demo", ofA.prefix(3).map { ($0, "i3", 2) })
        a2.itemExchange!.exchangeOnce()
        pair.b.itemExchange!.exchangeOnce()
        let row = try pair.b.registry.model("demo").current.features.row(of: "i3")!
        #expect(try pair.b.registry.model("demo").current.itemLearner!.observations(row: row) == 8,
                "the restarted node's sums hold what it published before its stop and what it learned since")
        #expect(try Self.items(a2)["i3"] == Self.items(pair.b)["i3"])
    }

    /// Random statistics of `count` observations of dimension 3.
    static func statistics(_ count: Int, _ rng: inout SplitMix64) -> RidgeStatistics {
        var s = RidgeStatistics(dimension: 3)
        for _ in 0..<count {
            let f: [Float] = (0..<3).map { _ in Float(rng.next() % 1000) / 250 - 2 }
            f.withUnsafeBufferPointer { s.add(features: $0.baseAddress!, target: Float(rng.next() % 5) + 1) }
        }
        return s
    }

    @Test("ledgers that merge the same publications in any order, repeated or late, hold the same totals")
    func ledgersConvergeWhateverTheMergeOrder() {
        var rng = SplitMix64(seed: 11)
        // Three nodes publish four revisions each over five items; a revision's row is cumulative.
        var publications: [ItemContribution] = []
        for node in ["a", "b", "c"] {
            for item in (0..<5).map({ "i\($0)" }) {
                var cumulative = RidgeStatistics(dimension: 3)
                for revision in 1...4 where rng.next() % 3 != 0 {
                    cumulative += Self.statistics(Int(rng.next() % 4) + 1, &rng)
                    publications.append(ItemContribution(node: node, item: item, revision: Int64(revision), statistics: cumulative))
                }
            }
        }
        // The latest of each node and item, summed in the order of the nodes' names.
        var latest: [String: [String: ItemContribution]] = [:]
        for p in publications where p.revision > latest[p.item]?[p.node]?.revision ?? 0 { latest[p.item, default: [:]][p.node] = p }
        var totals: [[RidgeStatistics?]] = []
        for trial in 0..<20 {
            // Shuffled, with a third of the rows delivered twice.
            var deliveries = publications + publications.filter { _ in rng.next() % 3 == 0 }
            deliveries.shuffle(using: &rng)
            var ledger = ContributionLedger()
            for d in deliveries { ledger.merge(d) }
            totals.append((0..<5).map { ledger.total(item: "i\($0)") })
            if trial == 0 {
                for item in (0..<5).map({ "i\($0)" }) {
                    var expected: RidgeStatistics?
                    for node in ["a", "b", "c"] {
                        guard let p = latest[item]?[node] else { continue }
                        if expected == nil { expected = p.statistics } else { expected! += p.statistics }
                    }
                    #expect(ledger.total(item: item) == expected, "\(item): the latest revision of each node, summed")
                }
            }
        }
        #expect(Set(totals.map { "\($0)" }).count == 1, "bit for bit the same in every order")
        // A revision older than the one held changes nothing.
        var ledger = ContributionLedger()
        let newer = ItemContribution(node: "a", item: "i0", revision: 2, statistics: Self.statistics(2, &rng))
        let merged = ledger.merge(newer)
        let older = ledger.merge(ItemContribution(node: "a", item: "i0", revision: 1, statistics: Self.statistics(1, &rng)))
        #expect(merged && !older)
        #expect(ledger.total(item: "i0") == newer.statistics)
    }

    @Test("a state plus statistics solves the ridge system of the start and every observation")
    func statisticsAddToTheirStart() throws {
        var rng = SplitMix64(seed: 5)
        var sequential = RidgeState(prior: [0.5, -0.25, 1], lambda: 2)
        let start = sequential
        var halves = [RidgeStatistics(dimension: 3), RidgeStatistics(dimension: 3)]
        for n in 0..<40 {
            // Padded with zeros to the state's stride: `update` reads that many floats.
            let f: [Float] = (0..<3).map { _ in Float(rng.next() % 1000) / 250 - 2 } + Array(repeating: 0, count: sequential.stride - 3)
            let t = Float(rng.next() % 5) + 1
            f.withUnsafeBufferPointer { halves[n % 2].add(features: $0.baseAddress!, target: t); sequential.update(features: $0.baseAddress!, target: t) }
        }
        var all = halves[1]
        all += halves[0]
        let solved = try RidgeState(start, adding: all)
        #expect(all.count == 40)
        for e in 0..<3 { #expect(abs(solved.weights[e] - sequential.weights[e]) < 1e-4, "weight \(e)") }
    }

    @Test("held-out RMSE of two nodes exchanging items is within 2 % of one node learning the same stream")
    func twoNodesLearnAsWellAsOne() async throws {
        let data = try SyntheticRatings(.init(users: 400, items: 80, ratings: 14_000, dimension: 3, noise: 0.3, seed: 21))
        let ratings = data.ratings()
        let (train, stream, heldOut) = (Array(ratings[..<4_000]), Array(ratings[4_000..<12_000]), Array(ratings[12_000...]))
        let result = try Trainer(configuration: .init(factors: 4, lambda: 1, iterations: 8, seed: 21))
            .train(model: "demo", number: 1, parent: nil, ratings: train)
        func stores() throws -> Stores {
            let s = Stores.inMemory()
            try s.storeVersion(result, reflecting: 0, trainingRatings: train, serve: true)
            return s
        }
        func rmse(_ predict: (Rating) throws -> Float) throws -> Double {
            let sum = try heldOut.reduce(0.0) { $0 + pow(Double(try predict($1) - $1.label), 2) }
            return (sum / Double(heldOut.count)).squareRoot()
        }
        // One node: every observation learned by users and items in stream order.
        let lone = try Manager(stores: try stores(), configuration: Self.configuration, logger: quiet)
        for r in stream { try await lone.observe(model: "demo", [(r.uid, r.item, r.label)]) }
        lone.itemPublisher.publish()
        let one = try rmse { try Predictor(registry: lone.registry).predict(model: "demo", uid: $0.uid, item: $0.item).score }
        // Two nodes exchanging every 250 observations (about 40 ms of this stream at 6,000 a second).
        let shared = try stores()
        let pair = try Self.pair(shared, reopened: shared, contributions: MemoryItemContributions())
        for (n, r) in stream.enumerated() {
            try await pair.observe([(r.uid, r.item, r.label)])
            if n % 250 == 249 { for m in [pair.a, pair.b] { m.itemExchange!.exchangeOnce() } }
        }
        for m in [pair.a, pair.b, pair.a] { m.itemExchange!.exchangeOnce(); m.itemPublisher.publish() }
        let two = try rmse {
            try Predictor(registry: ClusterTests.node(of: $0.uid, a: pair.a, b: pair.b).registry).predict(model: "demo", uid: $0.uid, item: $0.item).score
        }
        // Items fixed, for scale: what item updates add.
        let fixed = try Manager(stores: try stores(), configuration: .init(monitor: .init(validationFraction: 0)), logger: quiet)
        for r in stream { try await fixed.observe(model: "demo", [(r.uid, r.item, r.label)]) }
        let usersOnly = try rmse { try Predictor(registry: fixed.registry).predict(model: "demo", uid: $0.uid, item: $0.item).score }
        #expect(abs(two - one) / one < 0.02, "two nodes \(two), one node \(one), items fixed \(usersOnly)")
        #expect(two < usersOnly, "two nodes \(two) learn items: better than items fixed \(usersOnly)")
    }

    @Test(arguments: ClusterTests.backends)
    func aStoredContributionIsReplacedOnlyByAHigherRevision(_ backend: TrainedStore.Backend) throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let store = try Self.contributions(t)
        var rng = SplitMix64(seed: 3)
        let two = Self.statistics(3, &rng), one = Self.statistics(1, &rng), other = Self.statistics(2, &rng)
        try store.publish(model: "demo", version: 1, node: "a", revision: 2, [("i1", two)])
        try store.publish(model: "demo", version: 1, node: "a", revision: 1, [("i1", one), ("i2", one)])  // late
        try store.publish(model: "demo", version: 1, node: "b", revision: 1, [("i1", other)])
        let all = try store.contributions(model: "demo", version: 1, dimension: 3, after: [:])
        #expect(all.map { "\($0.node)/\($0.item)@\($0.revision)" } == ["a/i1@2", "a/i2@1", "b/i1@1"])
        #expect(all[0].statistics == two && all[1].statistics == one && all[2].statistics == other, "stored and read back bit for bit")
        #expect(try store.contributions(model: "demo", version: 1, dimension: 3, after: ["a": 1, "b": 1]).map(\.item) == ["i1"])
        #expect(try store.contributions(model: "demo", version: 2, dimension: 3, after: [:]).isEmpty)
        if let postgres = t.postgres {
            // A row whose statistics do not have the dimension asked for is named, not trusted.
            #expect {
                _ = try store.contributions(model: "demo", version: 1, dimension: 4, after: [:])
            } throws: { ($0 as? StorageError)?.code == .corrupt && "\($0)".contains("node a, item i1") }
            // Pruning the version takes its contributions with it.
            try postgres.stores.versions.deleteVersions(model: "demo", [1])
            #expect(try store.contributions(model: "demo", version: 1, dimension: 3, after: [:]).isEmpty)
        }
    }

    @Test func aVersionRetrainedOnOneNodeStartsItsItemsAlikeOnEveryNode() async throws {
        let t = try TrainedStore()
        let pair = try Self.pair(t.stores, reopened: try t.reopen(), contributions: MemoryItemContributions())
        let stream = ItemLearningTests.stream(200, seed: 9)
        try await pair.observe(Array(stream[..<100]))
        let job = try pair.b.retrainer.start(model: "demo")
        #expect(try await pair.b.retrainer.wait(forJob: job, model: "demo").error == nil)
        try await ClusterTests.eventually("a follows version 2") { try pair.a.registry.model("demo").version.number == 2 }
        // Each node started version 2's items from its training (the first to load it stored them).
        #expect(try t.stores.snapshots.loadItemStates(model: "demo", version: 2, dimension: 5).count == 40)
        #expect(try Self.items(pair.a) == Self.items(pair.b))
        try await pair.observe(Array(stream[100...]))
        for m in [pair.a, pair.b, pair.a] { m.itemExchange!.exchangeOnce() }
        let items = try Self.items(pair.a)
        #expect(items == (try Self.items(pair.b)))
        #expect(items.values.map { Int($0.last!) }.reduce(0, +) == 100, "version 2's items learn only what came after it")
    }

    /// A contribution store whose publications fail while `failing` is set.
    final class FailingPublications: ItemContributionStore, @unchecked Sendable {
        let inner = MemoryItemContributions()
        var failing = false

        func publish(model: String, version: Int, node: String, revision: Int64,
                     _ contributions: [(item: String, statistics: RidgeStatistics)]) throws {
            if failing { throw StorageError(.io, "injected: the database is unreachable") }
            try inner.publish(model: model, version: version, node: node, revision: revision, contributions)
        }

        func contributions(model: String, version: Int, dimension: Int, after: [String: Int64]) throws -> [ItemContribution] {
            try inner.contributions(model: model, version: version, dimension: dimension, after: after)
        }
    }

    @Test func sumsAFailedPublicationLeftOutArePublishedByTheNext() async throws {
        let t = try TrainedStore()
        let store = FailingPublications()
        let pair = try Self.pair(t.stores, reopened: try t.reopen(), contributions: store)
        try await pair.observe(ItemLearningTests.stream(80, seed: 4))
        store.failing = true
        #expect(pair.a.itemExchange!.exchangeOnce().published == 0)
        #expect(pair.b.itemExchange!.exchangeOnce().published == 0)
        #expect(try Self.items(pair.a) != Self.items(pair.b), "neither has the other's sums")
        store.failing = false
        for m in [pair.a, pair.b, pair.a] { m.itemExchange!.exchangeOnce() }
        #expect(try Self.items(pair.a) == Self.items(pair.b))
        #expect(try Self.items(pair.a).values.map { Int($0.last!) }.reduce(0, +) == 80)
    }
}
