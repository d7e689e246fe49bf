import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// The validation sample (Velox §4.3): held-out observations are scored, counted and logged, but
/// never learned — online, on replay, or by a retrain.
struct ValidationSampleTests {
    @Test(arguments: TrainedStore.Backend.available)
    func heldOutObservationsAreScoredButNeverLearned(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let monitor = QualityMonitor.Configuration(window: 10, validationFraction: 0.3)
        // Users only: the reference below learns against fixed item rows.
        let m = try Manager(stores: try t.reopen(), configuration: .init(monitor: monitor, itemUpdates: false), logger: quiet)
        let uid = t.ratings[0].uid
        let state = try m.registry.model("demo").current
        var reference = try #require(try state.users.fullState(uid)?.ridge)
        let v = state.version
        var held = 0, expectedValidation = 0.0
        for n in 0..<60 {
            let item = "i\(n % 30)", label = Float(n % 5) + 1
            let seq = Int64(n + 1)    // a fresh log: one observation per call, numbered from 1
            let row = try #require(v.features.catalog.row(of: item))
            if monitor.holdsOut(seq: seq) {
                held += 1
                let e = v.features.withFeatures(item: row) { f, offset in Double(label - offset - reference.predict(f)) }
                expectedValidation += e * e
            } else {
                v.features.withFeatures(item: row) { f, offset in _ = reference.update(features: f, target: label - offset) }
            }
            try await m.observe(model: "demo", [(uid, item, label)])
        }
        #expect(held > 5 && held < 40)
        let learned = try #require(try state.users.fullState(uid)?.ridge)
        #expect(learned.weights == reference.weights, "held-out observations never moved the weights")
        let quality = state.quality
        #expect(quality.validationScored == held && quality.scored == 60 - held)
        let windowed = quality.validationLoss ?? .nan
        #expect(abs(windowed - expectedValidation / Double(held)) < 1e-4 * max(1, windowed))
        #expect(try m.info(model: "demo", uid: uid).observations == 60, "every observation is counted")
        #expect(try t.stores.log.observationCount(model: "demo") == 60, "and logged")

        // A restart replays the log to the same weights and the same validation sample.
        let restarted = try Manager(stores: try t.reopen(), configuration: .init(monitor: monitor, itemUpdates: false), logger: quiet)
        let again = try restarted.registry.model("demo").current
        #expect(try again.users.fullState(uid)?.ridge.weights == learned.weights)
        #expect(again.quality.validationScored == held)

        // A retrain fits the initial ratings and the learned observations only.
        let id = try m.retrainer.start(model: "demo")
        #expect(try await m.retrainer.wait(forJob: id, model: "demo").phase == .done)
        #expect(try m.registry.model("demo").version.metadata.ratings == t.ratings.count + 60 - held)
    }
}
