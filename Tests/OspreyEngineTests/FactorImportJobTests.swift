import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// Importing factors trained elsewhere as version N+1, through the retrainer.
struct FactorImportJobTests {
    /// A fresh temporary directory.
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "osprey-import-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Random factors for `ids`, written as JSON lines part files (items, with offsets) or CSV (users).
    func write(_ ids: [String], dimension: Int, seed: UInt64, to path: String, offsets: Bool) throws {
        var rng = SplitMix64(seed: seed)
        let rows = ids.map { id in (id, (0..<dimension).map { _ in rng.nextGaussian() }, rng.nextUniform()) }
        if offsets {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let half = rows.count / 2
            for (n, part) in [rows[..<half], rows[half...]].enumerated() {
                let text = part.map { "{\"id\": \"\($0.0)\", \"features\": \($0.1), \"offset\": \($0.2)}\n" }.joined()
                try Data(text.utf8).write(to: URL(fileURLWithPath: path + "/part-0000\(n).json"))
            }
            try Data().write(to: URL(fileURLWithPath: path + "/_SUCCESS"))
        } else {
            let header = "user," + (0..<dimension).map { "f\($0)" }.joined(separator: ",") + "\n"
            let text = header + rows.map { "\($0.0)," + $0.1.map { "\($0)" }.joined(separator: ",") + "\n" }.joined()
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }
    }

    @Test func anImportServesVersionTwoOfTheImportedFactors() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        // A user only the log knows, and one more observation of a trained user.
        for n in 0..<6 { try await m.observe(model: "demo", [("newbie", "i\(n)", Float(n % 5))]) }
        try await m.observe(model: "demo", [("u1", "i2", 5)])

        let items = Array(Set(t.ratings.map(\.item))).sorted(), imported = (0..<5).map { "u\($0)" }
        try write(items, dimension: 3, seed: 1, to: dir + "/items", offsets: true)
        try write(imported, dimension: 3, seed: 2, to: dir + "/users.csv", offsets: false)
        let itemFactors = try FactorsReader().read(path: dir + "/items")
        let userFactors = try FactorsReader().read(path: dir + "/users.csv")
        #expect(itemFactors.count == items.count && userFactors.ids == imported)
        let factors = FactorImport(items: itemFactors, users: userFactors, regularization: .init(lambda: 1, scaled: false))

        let id = try m.retrainer.start(model: "demo", importing: factors)
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .done && job.version == 2 && job.error == nil, "\(job)")
        #expect(job.trigger == .import)

        let state = try m.registry.model("demo").current
        let version = state.version
        #expect(version.number == 2 && version.parent == 1 && version.dimension == 3)
        #expect(version.metadata.trigger == "import")
        #expect(version.metadata.source?.contains(dir + "/items") == true, "\(String(describing: version.metadata.source))")
        #expect(version.metadata.source?.contains(dir + "/users.csv") == true)
        #expect(try m.info(model: "demo").versions.map(\.status) == [.retired, .serving])

        // Imported users predict w·f + offset with their imported weights.
        let p = Predictor(registry: m.registry)
        for (u, uid) in userFactors.ids.enumerated() {
            let w = userFactors.vector(u)
            for item in ["i0", "i2", "i7"] {
                let i = try #require(itemFactors.ids.firstIndex(of: item))
                let expected = zip(w, itemFactors.vector(i)).reduce(Double(itemFactors.offsets[i])) { $0 + Double($1.0) * Double($1.1) }
                let prediction = try p.predict(model: "demo", uid: uid, item: item)
                #expect(prediction.version == 2)
                #expect(abs(Double(prediction.score) - expected) < 1e-4, "\(uid) \(item): \(prediction.score) vs \(expected)")
            }
        }
        // Users fitted to their ratings: a trained one, and the one only the log knew.
        for uid in ["newbie", "u10"] {
            let ridge = try #require(try state.users.fullState(uid)?.ridge, "\(uid) is in the new version")
            #expect(ridge.dimension == 3)
            #expect(Array(ridge.weights.prefix(3)) != Array(version.prior.prefix(3)), "\(uid) was fitted")
        }
        #expect(try t.stores.versions.loadVersion(model: "demo", number: 2).metadata.trigger == "import")
    }

    @Test func anImportOfMismatchedDimensionsFailsAndKeepsVersionOne() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let before = try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1")
        let items = ImportedFactors(dimension: 3, ids: ["i0", "i1"], vectors: [1, 2, 3, 4, 5, 6], offsets: [0, 0], path: "items")
        let users = ImportedFactors(dimension: 2, ids: ["u1"], vectors: [1, 2], offsets: [0], path: "users")
        let id = try m.retrainer.start(model: "demo", importing: FactorImport(items: items, users: users, regularization: .init(lambda: 1, scaled: false)))
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .failed && job.version == nil, "\(job)")
        #expect(job.error?.contains("must match") == true, "\(String(describing: job.error))")
        #expect(try m.info(model: "demo").versions.count == 1)
        #expect(try m.registry.model("demo").version.number == 1)
        #expect(try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1") == before)
    }
}
