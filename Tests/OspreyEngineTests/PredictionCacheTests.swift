import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// The prediction cache is never stale: every answer equals the one computed without a cache.
struct PredictionCacheTests {
    /// A cached and an uncached manager on two identical stores (one store each: a cold user's
    /// rebuild reads the log, which must hold only its own manager's observations).
    func managers(_ t: TrainedStore, _ twin: TrainedStore, policy: EvictionPolicy = .s3fifo,
                  metrics: RecordedMetrics = .init()) throws -> (cached: Manager, uncached: Manager) {
        let cached = try Manager(stores: try t.reopen(), configuration: .init(predictionCache: .init(capacity: 1000, policy: policy, scores: true)),
                                 metrics: metrics.engine, logger: quiet)
        let uncached = try Manager(stores: try twin.reopen(), configuration: .init(predictionCache: .init(capacity: 0)), logger: quiet)
        return (cached, uncached)
    }

    /// The counts of model `demo`'s prediction cache.
    func counts(_ metrics: RecordedMetrics) -> RecordedMetrics.CacheCounts { metrics.cache("osprey_prediction_cache", model: "demo") }

    @Test(arguments: EvictionPolicy.allCases)
    func repeatedRequestsAreHitsAndObservationsInvalidateOnlyThatUser(_ policy: EvictionPolicy) async throws {
        let t = try TrainedStore(), twin = try TrainedStore(), metrics = RecordedMetrics()
        defer { t.remove(); twin.remove() }
        let (m, plain) = try managers(t, twin, policy: policy, metrics: metrics)
        let p = Predictor(registry: m.registry), q = Predictor(registry: plain.registry)
        let (a, b) = (t.ratings[0].uid, t.ratings.first { $0.uid != t.ratings[0].uid }!.uid)
        for _ in 0..<3 {
            for uid in [a, b, "stranger"] {
                #expect(try p.predict(model: "demo", uid: uid, item: "i3") == q.predict(model: "demo", uid: uid, item: "i3"))
                #expect(try p.topK(model: "demo", uid: uid, k: 5, items: nil) == q.topK(model: "demo", uid: uid, k: 5, items: nil))
            }
        }
        #expect(counts(metrics) == .init(hits: 12, misses: 6, stale: 0, evictions: 0))

        // An observation for `a` (sent to both managers) makes a's answers stale, not b's.
        for manager in [m, plain] { try await manager.observe(model: "demo", [(a, "i3", 5)]) }
        #expect(try p.predict(model: "demo", uid: a, item: "i3") == q.predict(model: "demo", uid: a, item: "i3"))
        #expect(try p.topK(model: "demo", uid: a, k: 5, items: nil) == q.topK(model: "demo", uid: a, k: 5, items: nil))
        #expect(try p.predict(model: "demo", uid: b, item: "i3") == q.predict(model: "demo", uid: b, item: "i3"))
        #expect(counts(metrics) == .init(hits: 13, misses: 8, stale: 2, evictions: 0))

        // A stranger's first observation creates the user: the prior's answers no longer apply.
        for manager in [m, plain] { try await manager.observe(model: "demo", [("stranger", "i3", 1)]) }
        #expect(try p.predict(model: "demo", uid: "stranger", item: "i3") == q.predict(model: "demo", uid: "stranger", item: "i3"))
        #expect(counts(metrics).stale == 3)
    }

    @Test func differentRequestsOfOneUserAreDifferentEntries() async throws {
        let t = try TrainedStore(), twin = try TrainedStore(), metrics = RecordedMetrics()
        defer { t.remove(); twin.remove() }
        let (m, plain) = try managers(t, twin, metrics: metrics)
        let p = Predictor(registry: m.registry), q = Predictor(registry: plain.registry)
        let uid = t.ratings[0].uid
        let requests: [(Int, [String]?, [String], Bool)] = [
            (5, nil, [], false), (3, nil, [], false), (5, nil, ["i1"], false), (5, nil, [], true),
            (2, ["i1", "i2", "i3"], [], false), (2, ["i1", "i2", "i4"], [], false),
        ]
        for _ in 0..<2 {
            for (k, items, exclude, observed) in requests {
                #expect(try p.topK(model: "demo", uid: uid, k: k, items: items, exclude: exclude, excludeObserved: observed)
                    == q.topK(model: "demo", uid: uid, k: k, items: items, exclude: exclude, excludeObserved: observed))
            }
        }
        #expect(counts(metrics).hits == requests.count)
        // An unknown candidate is an error every time, never a cached answer.
        for _ in 0..<2 {
            #expect(throws: OspreyError.self) { try p.topK(model: "demo", uid: uid, k: 2, items: ["nope"]) }
        }
    }

    @Test func aRetrainRepopulatesTheNewVersionsCacheWithWhatWasHot() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), configuration: .init(predictionCache: .init(scores: true)), metrics: metrics.engine,
                            logger: quiet)
        let p = Predictor(registry: m.registry)
        let uids = Array(Set(t.ratings.map(\.uid))).sorted().prefix(10)
        for uid in uids {
            _ = try p.predict(model: "demo", uid: uid, item: "i2")
            _ = try p.topK(model: "demo", uid: uid, k: 4, items: nil, excludeObserved: true)
        }
        try await m.observe(model: "demo", [(uids[uids.startIndex], "i2", 5)])
        let id = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        let state = try m.registry.model("demo").current
        #expect(state.version.number == 2)
        #expect(state.predictions.count == 2 * uids.count, "every hot answer recomputed from version 2")
        #expect(metrics.gauge("osprey_prediction_cache_entries", model: "demo") == Double(2 * uids.count),
                "the entries gauge follows the serving state's cache")
        let before = counts(metrics)
        let fresh = Predictor(registry: try Manager(stores: try t.reopen(), configuration: .init(predictionCache: .init(capacity: 0)), logger: quiet).registry)
        for uid in uids {
            #expect(try p.predict(model: "demo", uid: uid, item: "i2") == fresh.predict(model: "demo", uid: uid, item: "i2"))
            #expect(try p.topK(model: "demo", uid: uid, k: 4, items: nil, excludeObserved: true)
                == fresh.topK(model: "demo", uid: uid, k: 4, items: nil, excludeObserved: true))
        }
        let after = counts(metrics)
        #expect(after.hits - before.hits == 2 * uids.count && after.misses == before.misses, "the first requests after the swap are hits")
    }

    @Test func byDefaultOnlyRankingsAreCached() async throws {
        let t = try TrainedStore(), metrics = RecordedMetrics()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), metrics: metrics.engine, logger: quiet)
        let p = Predictor(registry: m.registry)
        let uid = t.ratings[0].uid
        for _ in 0..<3 {
            _ = try p.predict(model: "demo", uid: uid, item: "i1")
            _ = try p.topK(model: "demo", uid: uid, k: 3, items: nil)
        }
        let cache = try m.registry.model("demo").current.predictions
        #expect(cache.count == 1 && counts(metrics).hits == 2 && counts(metrics).misses == 1)
        #expect(metrics.gauge("osprey_prediction_cache_entries", model: "demo") == 1)
    }
}
