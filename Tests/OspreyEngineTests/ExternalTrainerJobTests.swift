import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Synchronization
import Testing
@testable import OspreyEngine

/// A retrain whose factors an ``ExternalTrainer`` fits (`osprey retrain --trainer spark`).
struct ExternalTrainerJobTests {
    /// Fits the request with the built-in ALS, as a batch layer elsewhere would, and keeps the
    /// request it was given.
    final class ReferenceTrainer: ExternalTrainer {
        let requests = Mutex<[ExternalTrainingRequest]>([])

        func train(_ request: ExternalTrainingRequest) throws -> ExternalTrainingResult {
            requests.withLock { $0.append(request) }
            // Rows in the order ids are first met, as the built-in trainer numbers them.
            var users: [String: Int32] = [:], items: [String: Int32] = [:], uids: [String] = [], iids: [String] = []
            var u: [Int32] = [], i: [Int32] = [], labels: [Float] = []
            for r in request.ratings {
                if users[r.uid] == nil { users[r.uid] = Int32(uids.count); uids.append(r.uid) }
                if items[r.item] == nil { items[r.item] = Int32(iids.count); iids.append(r.item) }
                u.append(users[r.uid]!)
                i.append(items[r.item]!)
                labels.append(r.label)
            }
            let f = ALS.train(userCount: uids.count, itemCount: iids.count, users: u, items: i, labels: labels,
                              configuration: .init(dimension: request.factors, lambda: request.regularization.lambda,
                                                   scaleLambdaByCount: request.regularization.scaled,
                                                   iterations: request.iterations, seed: request.seed),
                              progress: { request.onIteration($0.iteration) })
            func rows(_ table: [Float], _ count: Int) -> [Float] {
                var out: [Float] = []
                for r in 0..<count { out += table[(r * f.stride)..<(r * f.stride + f.dimension)] }
                return out
            }
            let offsets: [Float] = f.itemBiases.map { f.mean + $0 }
            let itemFactors = ImportedFactors(dimension: f.dimension, ids: iids, vectors: rows(f.itemFeatures, iids.count),
                                              offsets: offsets, path: "items.json")
            let userFactors = ImportedFactors(dimension: f.dimension, ids: uids, vectors: rows(f.userWeights, uids.count),
                                              offsets: [Float](repeating: 0, count: uids.count), path: "users.json")
            return ExternalTrainingResult(items: itemFactors, users: userFactors, source: "reference: the built-in ALS")
        }
    }

    /// A batch layer that fails.
    struct FailingTrainer: ExternalTrainer {
        func train(_ request: ExternalTrainingRequest) throws -> ExternalTrainingResult {
            throw Trainer.ConfigurationError(description: "the cluster is down")
        }
    }

    @Test func anExternalFitOfTheSameModelServesWhatTheBuiltInRetrainServes() async throws {
        let pairs = [("u1", "i2"), ("u3", "i0"), ("u7", "i5"), ("newbie", "i1")]
        /// A retrain of a fresh copy of the model with one user only the log knows; its
        /// predictions for `pairs` and its version.
        func retrain(with external: (any ExternalTrainer)?) async throws -> ([Float], ModelVersion, RetrainJob) {
            let t = try TrainedStore()
            defer { t.remove() }
            let m = try Manager(stores: try t.reopen(), logger: quiet)
            for n in 0..<6 { try await m.observe(model: "demo", [("newbie", "i\(n)", Float(n % 5))]) }
            let id = try m.retrainer.start(model: "demo", trainingWith: external)
            let job = try await m.retrainer.wait(forJob: id, model: "demo")
            let p = Predictor(registry: m.registry)
            return (try pairs.map { try p.predict(model: "demo", uid: $0.0, item: $0.1).score }, try m.registry.model("demo").version, job)
        }
        let (builtin, builtinVersion, _) = try await retrain(with: nil)
        let reference = ReferenceTrainer()
        let (external, version, job) = try await retrain(with: reference)

        #expect(job.phase == .done && job.trigger == .request && job.version == 2, "\(job)")
        #expect(job.iteration == builtinVersion.metadata.iterations, "the trainer's iterations show on the job")
        let request = try #require(reference.requests.withLock { $0.first })
        #expect(request.number == 2 && request.factors == 4 && request.iterations == 5 && request.seed == builtinVersion.metadata.seed)
        #expect(request.regularization == Regularization(lambda: 1, scaled: false))
        #expect(request.ratings.count == builtinVersion.metadata.ratings, "the trainer gets what the built-in retrain trains on")
        for (a, b) in zip(external, builtin) { #expect(abs(a - b) < 1e-3, "\(external) vs \(builtin)") }

        let metadata = version.metadata
        #expect(version.parent == 1 && version.dimension == builtinVersion.dimension)
        #expect(metadata.trigger == "request" && metadata.source == "reference: the built-in ALS")
        #expect(metadata.factors == 4 && metadata.iterations == 5 && metadata.lambda == 1 && metadata.lambdaSelection == "given")
        #expect(abs((metadata.trainingRMSE ?? .nan) - (builtinVersion.metadata.trainingRMSE ?? .nan)) < 1e-4)
    }

    @Test func aFailingExternalTrainerKeepsVersionOne() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let m = try Manager(stores: try t.reopen(), logger: quiet)
        let before = try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1")
        let id = try m.retrainer.start(model: "demo", trainingWith: FailingTrainer())
        let job = try await m.retrainer.wait(forJob: id, model: "demo")
        #expect(job.phase == .failed && job.version == nil && job.error == "the cluster is down", "\(job)")
        #expect(try m.info(model: "demo").versions.count == 1)
        #expect(try Predictor(registry: m.registry).predict(model: "demo", uid: "u1", item: "i1") == before)
    }
}
