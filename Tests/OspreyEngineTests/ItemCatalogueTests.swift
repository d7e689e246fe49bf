import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine
@testable import OspreyStorage

/// The item catalogue in serving: items written with attributes are scored at once from the
/// version's attribute map, hidden items leave top-k answers, cached answers follow the
/// catalogue, and the map and the catalogue survive a restart.
struct ItemCatalogueTests {
    /// A model trained on generated ratings whose items' attributes explain most of their
    /// vectors; items `i0`…`i4` are held out of training (new items), the rest are in the
    /// catalogue with their attributes.
    struct Fixture {
        let stores: Stores
        let directory: String?
        let attributes: [String: ItemAttributes]
        static let newItems = (0..<5).map { "i\($0)" }

        init(sqlite: Bool = false, attributeMap: Bool = true) throws {
            let data = try SyntheticRatings(.init(users: 80, items: 60, ratings: 2000, dimension: 4, noise: 0.1, seed: 11,
                                                  attributeShare: 0.9))
            attributes = Dictionary(uniqueKeysWithValues: data.catalogue!.items.map { ($0.id, $0.attributes) })
            let ratings = data.ratings().filter { !Self.newItems.contains($0.item) }
            var result = try Trainer(configuration: .init(factors: 4, lambda: 1, iterations: 5))
                .train(model: "demo", number: 1, parent: nil, ratings: ratings)
            if attributeMap {
                let known = attributes
                result.fitAttributeMap(attributes: { known[$0] }, buckets: 256) { _ in }
                #expect(result.computed != nil)
            }
            if sqlite {
                let dir = NSTemporaryDirectory() + "osprey-items-" + UUID().uuidString
                stores = try SQLiteStores(directory: dir, access: .unlocked).stores
                directory = dir
            } else {
                stores = .inMemory()
                directory = nil
            }
            try stores.storeVersion(result, reflecting: 0, trainingRatings: ratings, serve: true)
            try stores.versions.putItems(model: "demo", data.catalogue!.items.filter { !Self.newItems.contains($0.id) })
        }

        func reopen() throws -> Stores {
            guard let directory else { return stores }
            return try SQLiteStores(directory: directory, access: .unlocked).stores
        }

        func remove() {
            if let directory { try? FileManager.default.removeItem(atPath: directory) }
        }
    }

    /// `offset + w · f` for an item computed from `attributes` by the serving version, the way a
    /// reader would compute it by hand.
    func expectedScore(_ m: Manager, uid: String, attributes: ItemAttributes) throws -> Float {
        let state = try m.registry.model("demo").current
        let v = state.version
        var f = [Float](repeating: 0, count: v.features.stride)
        let offset = f.withUnsafeMutableBufferPointer { v.computedFeatures.features(of: attributes, into: $0.baseAddress!) }
        let w = state.users.read(uid) { $0.map { Array(UnsafeBufferPointer(start: $0.weights, count: v.features.stride)) } }
            ?? (v.prior + [Float](repeating: 0, count: v.features.stride - v.dimension))
        return offset + zip(w, f).reduce(0) { $0 + $1.0 * $1.1 }
    }

    @Test func aNewItemIsScoredFromItsAttributesAsSoonAsItIsWritten() throws {
        let fx = try Fixture()
        let m = try Manager(stores: fx.stores, logger: quiet)
        let p = Predictor(registry: m.registry)
        #expect(throws: OspreyError.self) { try p.predict(model: "demo", uid: "u1", item: "i0") }
        try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!)])
        let score = try p.predict(model: "demo", uid: "u1", item: "i0").score
        #expect(abs(score - (try expectedScore(m, uid: "u1", attributes: fx.attributes["i0"]!))) < 1e-4)
        #expect(try m.item(model: "demo", id: "i0") == ItemInfo(id: "i0", attributes: fx.attributes["i0"]!, hidden: false,
                                                                 source: .attributes, version: 1))
        #expect(try m.item(model: "demo", id: "i9").source == .trained)
        #expect(throws: OspreyError.self) { try m.item(model: "demo", id: "nope") }
    }

    @Test func theWholeCatalogueRanksTrainedAndComputedItemsAsAFullSortDoes() throws {
        let fx = try Fixture()
        let m = try Manager(stores: fx.stores, logger: quiet)
        try m.putItems(model: "demo", Fixture.newItems.map { ($0, fx.attributes[$0]!) })
        let p = Predictor(registry: m.registry)
        let all = try m.registry.model("demo").current.version.features.catalog.ids + Fixture.newItems
        for uid in ["u1", "u7", "never-seen"] {
            let ranking = try p.topK(model: "demo", uid: uid, k: 60, items: nil)
            let sorted = try all.map { ($0, try p.predict(model: "demo", uid: uid, item: $0).score) }.sorted { $0.1 > $1.1 }
            #expect(ranking.items.count == all.count)
            #expect(ranking.items.map(\.item) == sorted.map(\.0), "\(uid)")
            let explicit = try p.topK(model: "demo", uid: uid, k: 5, items: Fixture.newItems + ["i10"])
            #expect(Set(explicit.items.map(\.item)).isSubset(of: Set(Fixture.newItems + ["i10"])))
            // Excluded computed items and trained ones leave the whole-catalogue answer alone.
            let excluded = ["i1", "i3", "i20"]
            let without = try p.topK(model: "demo", uid: uid, k: 60, items: nil, exclude: excluded)
            #expect(without.items.map(\.item) == sorted.map(\.0).filter { !excluded.contains($0) }, "\(uid) excluding \(excluded)")
        }
        // A changed item's vector is taken again for the whole-catalogue scan.
        try m.putItems(model: "demo", [("i2", fx.attributes["i4"]!)])
        let ranking = try p.topK(model: "demo", uid: "u1", k: 60, items: nil)
        let sorted = try all.map { ($0, try p.predict(model: "demo", uid: "u1", item: $0).score) }.sorted { $0.1 > $1.1 }
        #expect(ranking.items.map(\.item) == sorted.map(\.0), "after a change")
    }

    @Test func anItemNeitherTrainedNorWrittenIsStillUnknown() throws {
        let fx = try Fixture()
        let m = try Manager(stores: fx.stores, logger: quiet)
        let p = Predictor(registry: m.registry)
        #expect(throws: OspreyError.self) { try p.topK(model: "demo", uid: "u1", k: 3, items: ["i0", "i10"]) }
        do {
            _ = try p.predict(model: "demo", uid: "u1", item: "i0")
            Issue.record("an unknown item was scored")
        } catch let e as OspreyError {
            #expect(e.code == .unknownItem)
        }
    }

    @Test func hiddenItemsAreNeverInTopKAnswersButPredictStillScoresThem() throws {
        let fx = try Fixture(sqlite: true)
        defer { fx.remove() }
        let m = try Manager(stores: fx.stores, logger: quiet)
        try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!)])
        let p = Predictor(registry: m.registry)
        let top = try p.topK(model: "demo", uid: "u3", k: 3, items: nil).items.map(\.item)
        // Hide the best trained item and the new one.
        try m.setItemHidden(model: "demo", item: top[0], hidden: true)
        try m.setItemHidden(model: "demo", item: "i0", hidden: true)
        for _ in 0..<2 {
            let now = try p.topK(model: "demo", uid: "u3", k: 64, items: nil).items.map(\.item)
            #expect(!now.contains(top[0]) && !now.contains("i0"))
            let trained = try m.registry.model("demo").version.features.catalog.count
            #expect(now.count == trained + 1 - 2, "the trained items and one new item, two hidden")
            let named = try p.topK(model: "demo", uid: "u3", k: 3, items: [top[0], "i0", "i10"]).items.map(\.item)
            #expect(named == ["i10"])
            _ = try p.predict(model: "demo", uid: "u3", item: top[0])
        }
        #expect(try m.item(model: "demo", id: top[0]).hidden)
        // A restart keeps them hidden; showing one brings it back.
        let restarted = try Manager(stores: try fx.reopen(), logger: quiet)
        let q = Predictor(registry: restarted.registry)
        #expect(!(try q.topK(model: "demo", uid: "u3", k: 64, items: nil).items.map(\.item).contains(top[0])))
        try restarted.setItemHidden(model: "demo", item: top[0], hidden: false)
        #expect(try q.topK(model: "demo", uid: "u3", k: 3, items: nil).items.map(\.item) == top)
        #expect(throws: OspreyError.self) { try restarted.setItemHidden(model: "demo", item: "nope", hidden: true) }
    }

    @Test func aCachedAnswerIsNotServedAfterTheCatalogueChanged() throws {
        let fx = try Fixture()
        let m = try Manager(stores: fx.stores, logger: quiet)
        let p = Predictor(registry: m.registry)
        // The whole catalogue, so a new item is in the answer wherever it ranks.
        let before = try p.topK(model: "demo", uid: "u2", k: 100, items: nil)
        #expect(try p.topK(model: "demo", uid: "u2", k: 100, items: nil) == before)
        try m.putItems(model: "demo", [("clone", fx.attributes[before.items[0].item]!)])
        let cloneScore = try p.predict(model: "demo", uid: "u2", item: "clone").score
        let after = try p.topK(model: "demo", uid: "u2", k: 100, items: nil)
        let expected = (before.items.map { ($0.item, $0.score) } + [("clone", cloneScore)]).sorted { $0.1 > $1.1 }
        #expect(after.items.map(\.item) == expected.map(\.0))
        // Replacing an item's attributes changes its score at once.
        try m.putItems(model: "demo", [("clone", fx.attributes[before.items[2].item]!)])
        #expect(try p.predict(model: "demo", uid: "u2", item: "clone").score
            == (try expectedScore(m, uid: "u2", attributes: fx.attributes[before.items[2].item]!)))
    }

    @Test func anObservationOfAComputedItemTeachesTheUserAndReplaysExactly() async throws {
        let fx = try Fixture(sqlite: true)
        defer { fx.remove() }
        let m = try Manager(stores: fx.stores, logger: quiet)
        try m.putItems(model: "demo", Fixture.newItems.map { ($0, fx.attributes[$0]!) })
        let p = Predictor(registry: m.registry)
        let before = try p.predict(model: "demo", uid: "u5", item: "i0").score
        for _ in 0..<5 { try await m.observe(model: "demo", [("u5", "i0", 5)]) }
        let after = try p.predict(model: "demo", uid: "u5", item: "i0").score
        #expect(after > before + 0.1, "learning a high label moves the score up: \(before) → \(after)")
        m.itemPublisher.publish()
        // A restart replays the log against the catalogue: the same bits.
        let restarted = try Manager(stores: try fx.reopen(), logger: quiet)
        let q = Predictor(registry: restarted.registry)
        for item in Fixture.newItems + ["i10", "i20"] {
            #expect(try q.predict(model: "demo", uid: "u5", item: item) == p.predict(model: "demo", uid: "u5", item: item))
        }
        #expect(try restarted.info(model: "demo", uid: "u5") == m.info(model: "demo", uid: "u5"))
    }

    @Test func aVersionWithoutAnAttributeMapScoresNewItemsAsTheMeanItem() throws {
        let fx = try Fixture(attributeMap: false)
        let m = try Manager(stores: fx.stores, logger: quiet)
        try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!), ("i1", [:])])
        let v = try m.registry.model("demo").version
        #expect(v.computed == nil)
        let p = Predictor(registry: m.registry)
        let a = try p.predict(model: "demo", uid: "u1", item: "i0").score, b = try p.predict(model: "demo", uid: "u1", item: "i1").score
        #expect(a == b, "no map: every untrained item is the mean item")
        #expect(abs(a - (try expectedScore(m, uid: "u1", attributes: [:]))) < 1e-4)
        #expect(try m.item(model: "demo", id: "i0").source == .mean)
    }

    @Test func aRetrainFitsTheAttributeMapFromTheCatalogue() async throws {
        let fx = try Fixture(attributeMap: false)
        let m = try Manager(stores: fx.stores, logger: quiet)
        try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!)])
        #expect(try m.item(model: "demo", id: "i0").source == .mean)
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "demo"), model: "demo")
        #expect(job.version == 2)
        let v = try m.registry.model("demo").version
        let map = try #require(v.computed as? HashedAttributeFeatures)
        #expect(map.items == v.features.catalog.count, "every trained item has attributes")
        #expect(try m.item(model: "demo", id: "i0").source == .attributes)
    }

    @Test func theAttributeMapIsStoredWithTheVersion() throws {
        let fx = try Fixture(sqlite: true)
        defer { fx.remove() }
        let stored = try fx.stores.versions.loadVersion(model: "demo", number: 1)
        let reread = try fx.reopen().versions.loadVersion(model: "demo", number: 1)
        let a = try #require(stored.computed as? HashedAttributeFeatures), b = try #require(reread.computed as? HashedAttributeFeatures)
        #expect(a == b)
    }

    @Test func invalidItemsAreRefusedNamingTheFieldAndNothingIsStored() throws {
        let fx = try Fixture()
        let m = try Manager(stores: fx.stores, logger: quiet)
        let cases: [(ItemAttributes, String)] = [
            (["year": .number(.infinity)], "items.1.attributes.year must be a finite number"),
            (["title": .string(String(repeating: "x", count: 1025))], "items.1.attributes.title must be at most 1024 characters long"),
            (Dictionary(uniqueKeysWithValues: (0..<65).map { ("a\($0)", AttributeValue.number(1)) }), "items.1.attributes has 65 attributes"),
            (["tags": .strings(["ok", "bad\u{0}"])], "items.1.attributes.tags.1 must not contain NUL"),
        ]
        for (attributes, message) in cases {
            do {
                try m.putItems(model: "demo", [("fine", ["a": .string("b")]), ("bad", attributes)])
                Issue.record("accepted \(attributes)")
            } catch let e as OspreyError {
                #expect(e.code == .invalidArgument && e.message.hasPrefix(message), "\(e.message)")
            }
        }
        #expect(try fx.stores.versions.catalogueItem(model: "demo", id: "fine") == nil, "nothing was stored")
        #expect(try m.registry.model("demo").current.catalogue.index(of: "fine") == nil)
        #expect(throws: OspreyError.self) { try m.putItems(model: "nope", [("x", [:])]) }
    }

    @Test func aFailedWriteStoresNothingAndServesNothingNew() throws {
        let fx = try Fixture()
        let faults = Faults()
        let m = try Manager(stores: fx.stores.injectingFaults(faults), logger: quiet)
        faults.failNext(.versionWrite)
        do {
            try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!)])
            Issue.record("a failed write was acknowledged")
        } catch let e as OspreyError {
            #expect(e.code == .unavailable)
        }
        #expect(throws: OspreyError.self) { try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i0") }
        try m.putItems(model: "demo", [("i0", fx.attributes["i0"]!)])
        _ = try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i0")
    }
}

/// A third kind of computed feature function, defined here and nowhere in the engine: an item's
/// vector is its numeric attribute `x` in every entry, its offset `x` too.
struct ToyFeatures: ComputedFeatureFunction, Equatable {
    static let kind = "toy"
    let dimension: Int

    init(dimension: Int) {
        self.dimension = dimension
    }

    func features(of attributes: ItemAttributes, into vector: UnsafeMutablePointer<Float>) -> Float {
        guard case .number(let x) = attributes["x"] else { return 0 }
        let s = VectorKernels.paddedStride(dimension)
        for k in 0..<s { vector[k] = k < dimension ? Float(x) : 0 }
        return Float(x)
    }

    func encoded() throws -> Data { Data([UInt8(dimension)]) }

    init(encoded: Data) throws {
        struct BadBytes: Error {}
        guard encoded.count == 1 else { throw BadBytes() }
        dimension = Int(encoded[encoded.startIndex])
    }
}

struct ThirdFeatureFunctionTests {
    @Test(arguments: TrainedStore.Backend.durable)
    func aNewKindServesThroughTheEngineAndTheStoreUnchanged(_ backend: TrainedStore.Backend) throws {
        ComputedFeatureKinds.register(ToyFeatures.self)
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        // A version whose computed part is the toy, stored and read back through each durable store.
        var result = try Trainer(configuration: .init(factors: 4, lambda: 1, iterations: 2))
            .train(model: "demo", number: 2, parent: 1, ratings: t.ratings)
        result.computed = ToyFeatures(dimension: result.features.dimension)
        let v2 = try t.stores.storeVersion(result, reflecting: 0, trainingRatings: [], serve: true)
        try t.stores.versions.putItems(model: "demo", [CatalogueItem(id: "toy-item", attributes: ["x": .number(2)])])
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        #expect(try m.registry.model("demo").version.computed is ToyFeatures)
        let prior = v2.prior
        let score = try Predictor(registry: m.registry).predict(model: "demo", uid: "never-seen", item: "toy-item").score
        #expect(abs(score - (2 + prior.reduce(0) { $0 + 2 * $1 })) < 1e-4)
    }
}
