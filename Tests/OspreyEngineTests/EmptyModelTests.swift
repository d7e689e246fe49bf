import Dispatch
import Foundation
import OspreyModel
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine
@testable import OspreyStorage

/// Models made empty (`POST /v1/models`): durable and served at once, items scored from their
/// attributes, users learning exactly from their first observation, kept across a restart, and
/// replaced by a trained θ at the first retrain.
struct EmptyModelTests {
    static let drama: ItemAttributes = ["genres": .strings(["Drama"]), "year": .number(2001)]
    static let comedy: ItemAttributes = ["genres": .strings(["Comedy"]), "year": .number(1990)]
    static let crime: ItemAttributes = ["genres": .strings(["Drama", "Crime"]), "studio": .string("North")]

    static let spec = EmptyModel(name: "news", factors: 6, lambda: 2, mean: 3,
                                 numeric: ["year": .init(mean: 2000, deviation: 10)])

    /// An item's computed vector and offset under the serving version.
    func features(_ m: Manager, _ attributes: ItemAttributes) throws -> (f: [Double], offset: Double) {
        let v = try m.registry.model("news").version
        var f = [Float](repeating: 0, count: v.features.stride)
        let offset = f.withUnsafeMutableBufferPointer { v.computedFeatures.features(of: attributes, into: $0.baseAddress!) }
        return (f[0..<v.dimension].map(Double.init), Double(offset))
    }

    /// Solves `a x = b` (n×n, row-major) by Gaussian elimination with partial pivoting, in Double.
    func solve(_ a: [Double], _ b: [Double]) -> [Double] {
        let n = b.count
        var a = a, b = b
        for c in 0..<n {
            let p = (c..<n).max { abs(a[$0 * n + c]) < abs(a[$1 * n + c]) }!
            for k in 0..<n { a.swapAt(c * n + k, p * n + k) }
            b.swapAt(c, p)
            for r in (c + 1)..<n {
                let f = a[r * n + c] / a[c * n + c]
                for k in c..<n { a[r * n + k] -= f * a[c * n + k] }
                b[r] -= f * b[c]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = b[r]
            for k in (r + 1)..<n { s -= a[r * n + k] * x[k] }
            x[r] = s / a[r * n + r]
        }
        return x
    }

    /// Users only, so the items' vectors stay their attributes' (with items learning online too,
    /// ItemLearningTests check the item side).
    @Test func anEmptyModelServesFromAttributesAndLearnsExactlyFromItsFirstObservations() async throws {
        let m = try Manager(stores: .inMemory(), configuration: .init(itemUpdates: false), logger: quiet)
        let info = try m.createModel(Self.spec)
        #expect(info.version == 1 && info.dimension == 6 && info.users == 0)
        try m.putItems(model: "news", [("a1", Self.drama), ("a2", Self.comedy), ("a3", Self.crime)])
        let p = Predictor(registry: m.registry)
        // No evidence: every item is the mean.
        for item in ["a1", "a2", "a3"] { #expect(try p.predict(model: "news", uid: "u1", item: item).score == 3) }
        #expect(throws: OspreyError.self) { try p.predict(model: "news", uid: "u1", item: "unknown") }

        // An item's vector is its hashed attributes with the constant 1 last; numbers count by their scale.
        let (f1, offset1) = try features(m, Self.drama)
        #expect(f1.last == 1 && offset1 == 3)
        #expect(f1 != (try features(m, ["genres": .strings(["Drama"]), "year": .number(2030)])).f)

        // Two observations; the user's weights are the direct ridge solve, its answers follow.
        try await m.observe(model: "news", [(uid: "u1", item: "a1", label: Float(5)), (uid: "u1", item: "a3", label: Float(4))])
        let (f3, _) = try features(m, Self.crime)
        let d = f1.count
        var a = [Double](repeating: 0, count: d * d), b = [Double](repeating: 0, count: d)
        for k in 0..<d { a[k * d + k] = 2 }
        for (f, y) in [(f1, 5.0), (f3, 4.0)] {
            for r in 0..<d {
                b[r] += (y - 3) * f[r]
                for c in 0..<d { a[r * d + c] += f[r] * f[c] }
            }
        }
        let w = solve(a, b)
        for (item, attributes) in [("a1", Self.drama), ("a2", Self.comedy), ("a3", Self.crime)] {
            let (f, offset) = try features(m, attributes)
            let expected = offset + zip(w, f).reduce(0) { $0 + $1.0 * $1.1 }
            let served = Double(try p.predict(model: "news", uid: "u1", item: item).score)
            #expect(abs(served - expected) < 1e-4, "\(item): \(served) vs \(expected)")
        }
        // Whole-catalogue top-k is the full sort of those scores.
        let top = try p.topK(model: "news", uid: "u1", k: 3, items: nil).items.map(\.item)
        let sorted = try ["a1", "a2", "a3"].sorted { try p.predict(model: "news", uid: "u1", item: $0).score > p.predict(model: "news", uid: "u1", item: $1).score }
        #expect(top == sorted)
    }

    @Test func anEmptyModelIsDurableAndARestartReplaysItsLog() async throws {
        let dir = NSTemporaryDirectory() + "osprey-empty-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var before: Float = 0
        do {
            let m = try Manager(stores: try SQLiteStores(directory: dir, access: .unlocked).stores, logger: quiet)
            try m.createModel(Self.spec)
            try m.putItems(model: "news", [("a1", Self.drama), ("a2", Self.comedy)])
            try await m.observe(model: "news", [(uid: "u1", item: "a1", label: Float(5))])
            before = try Predictor(registry: m.registry).predict(model: "news", uid: "u1", item: "a2").score
            #expect(before != 3)
        }
        let m = try Manager(stores: try SQLiteStores(directory: dir, access: .unlocked).stores, logger: quiet)
        let info = try m.info(model: "news")
        #expect(info.dimension == 6 && info.versions.first?.metadata.trigger == "create")
        #expect(try Predictor(registry: m.registry).predict(model: "news", uid: "u1", item: "a2").score == before)
    }

    @Test func theFirstRetrainWithRatingsFitsTheta() async throws {
        let m = try Manager(stores: .inMemory(), logger: quiet)
        try m.createModel(EmptyModel(name: "news", factors: 3))
        let empty = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "news"), model: "news")
        #expect(empty.phase == .failed && empty.error?.contains("no ratings") == true)
        // A few ratings, no user with five: nothing to validate λ on, the retrain keeps λ and says so.
        try await m.observe(model: "news", [(uid: "u1", item: "i1", label: Float(4)), (uid: "u2", item: "i1", label: Float(2)),
                                            (uid: "u2", item: "i2", label: Float(5))])
        let few = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "news"), model: "news")
        #expect(few.phase == .done && few.version == 2, "\(few.error ?? "")")
        let small = try m.registry.model("news").version.metadata
        #expect(small.validationRMSE == nil && small.lambdaSelection.hasPrefix("not validated") && small.lambda == 1)
        let data = try SyntheticRatings(.init(users: 40, items: 30, ratings: 600, dimension: 3, noise: 0.1, seed: 3))
        try await m.observe(model: "news", data.ratings().map { (uid: $0.uid, item: $0.item, label: $0.label) })
        let job = try await m.retrainer.wait(forJob: try m.retrainer.start(model: "news"), model: "news")
        #expect(job.phase == .done && job.version == 3)
        let v = try m.registry.model("news").version
        #expect(v.features.catalog.count == 30 && v.dimension == 4 && v.parent == 2 && v.metadata.validationRMSE != nil)
        #expect(try m.item(model: "news", id: "i1").source == .trained)
    }

    @Test func badSpecsAndTakenNamesAreRefused() throws {
        let m = try Manager(stores: try TrainedStore().stores, configuration: .init(maxModels: 3), logger: quiet)
        func refused(_ spec: EmptyModel, _ code: OspreyError.Code, _ text: String) {
            do {
                try m.createModel(spec)
                Issue.record("\(spec.name) was created")
            } catch let e as OspreyError {
                #expect(e.code == code && e.message.contains(text), "\(e)")
            } catch {
                Issue.record("\(error)")
            }
        }
        refused(EmptyModel(name: "", factors: 4), .invalidArgument, "name must be")
        refused(EmptyModel(name: "a/b", factors: 4), .invalidArgument, "name must be")
        refused(EmptyModel(name: "a\u{7}", factors: 4), .invalidArgument, "name must be")
        refused(EmptyModel(name: String(repeating: "x", count: 129), factors: 4), .invalidArgument, "name must be")
        refused(EmptyModel(name: "x", factors: 0), .invalidArgument, "dimension must be between 1 and 512")
        refused(EmptyModel(name: "x", factors: 513), .invalidArgument, "dimension must be between 1 and 512")
        refused(EmptyModel(name: "x", factors: 4, lambda: 0), .invalidArgument, "lambda must be a number from 1e-06 to 1e+06")
        refused(EmptyModel(name: "x", factors: 4, lambda: .nan), .invalidArgument, "lambda must be a number from 1e-06 to 1e+06")
        refused(EmptyModel(name: "x", factors: 4, mean: .infinity), .invalidArgument, "mean")
        refused(EmptyModel(name: "x", factors: 4, mean: 2e6), .invalidArgument, "mean")
        refused(EmptyModel(name: "x", factors: 4, numeric: ["year": .init(mean: 1, deviation: 0)]), .invalidArgument, "numeric.year")
        refused(EmptyModel(name: "demo", factors: 4), .conflict, "exists already")
        #expect(throws: OspreyError.self) { try m.registry.model("x") }
        try m.createModel(EmptyModel(name: "x", factors: 4))
        refused(EmptyModel(name: "x", factors: 4), .conflict, "exists already")
        try m.createModel(EmptyModel(name: "y", factors: 4))
        refused(EmptyModel(name: "z", factors: 4), .conflict, "its limit (--max-models)")
        #expect(m.registry.all.map(\.name) == ["demo", "x", "y"])
    }

    /// Eight requests for one name at once, each held at its catalogue write: without the
    /// creation lock every one would pass the name check before the first stored its model.
    @Test func concurrentCreationsOfOneNameMakeOneModel() throws {
        let faults = Faults()
        let m = try Manager(stores: Stores.inMemory().injectingFaults(faults), logger: quiet)
        let made = Atomic<Int>(0), conflicts = Atomic<Int>(0)
        let group = DispatchGroup()
        faults.hold(.versionWrite)
        for _ in 0..<8 {
            DispatchQueue.global().async(group: group) {
                do {
                    try m.createModel(EmptyModel(name: "news", factors: 4))
                    made.add(1, ordering: .relaxed)
                } catch let e as OspreyError where e.code == .conflict {
                    conflicts.add(1, ordering: .relaxed)
                } catch {
                    Issue.record("\(error)")
                }
            }
        }
        Thread.sleep(forTimeInterval: 0.2)
        faults.release(.versionWrite)
        group.wait()
        #expect(made.load(ordering: .relaxed) == 1 && conflicts.load(ordering: .relaxed) == 7)
        #expect(try m.stores.versions.versions(model: "news").count == 1)
    }
}
