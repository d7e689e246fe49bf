import Foundation
import OspreyMath
import Testing
@testable import OspreyModel

struct TrainerTests {
    /// With default settings (d=20, λ chosen by validation), held-out RMSE on data from a known
    /// model is within 15% of the generator's noise σ.
    @Test func heldOutRMSENearTheNoiseFloor() throws {
        let sigma = 0.5
        let data = try SyntheticRatings(.init(users: 400, items: 200, ratings: 36_000, dimension: 5, noise: sigma, seed: 21))
        let all = data.ratings()
        var rng = SplitMix64(seed: 4)
        var train: [Rating] = [], heldOut: [Rating] = []
        for r in all { if rng.nextUniform() < 0.1 { heldOut.append(r) } else { train.append(r) } }
        let result = try Trainer().train(model: "m", number: 1, parent: nil, ratings: train).materialized()
        let v = result.version
        let users = Dictionary(uniqueKeysWithValues: result.users.map { ($0.uid, $0.state) })
        var sum = 0.0, n = 0
        for r in heldOut {
            guard let row = v.features.catalog.row(of: r.item) else { continue }
            let weights = users[r.uid]?.weights ?? (v.prior + [Float](repeating: 0, count: v.features.stride - v.dimension))
            let p = weights.withUnsafeBufferPointer { v.features.score(weights: $0.baseAddress!, item: row) }
            sum += Double((p - r.label) * (p - r.label))
            n += 1
        }
        let rmse = (sum / Double(n)).squareRoot()
        #expect(rmse <= sigma * 1.15, "held-out RMSE \(rmse) vs noise σ \(sigma); λ=\(v.lambda) (\(v.metadata.lambdaSelection))")
        #expect(v.metadata.validationRMSE != nil)
        #expect(v.metadata.lambdaSelection.contains("validation"))
    }

    /// A search near a given λ (a retrain's) fits 3 to 6 candidates, walks away from a poor
    /// start in the right direction, and never ends worse than where it started.
    @Test func aSearchNearALambdaFitsFewCandidatesAndImprovesOnIt() throws {
        let ratings = try SyntheticRatings(.init(users: 150, items: 80, ratings: 6_000, dimension: 3, noise: 0.5, seed: 9)).ratings()
        func train(near: Regularization?) throws -> (TrainingMetadata, fits: Int) {
            let fits = Counter()
            var trainer = Trainer(configuration: .init(factors: 4, iterations: 4, lambdaNear: near))
            trainer.onLambdaFit = { n in fits.set(n) }
            let v = try trainer.train(model: "m", number: 1, parent: nil, ratings: ratings)
            return (v.metadata, fits.value)
        }
        let (full, fullFits) = try train(near: nil)
        #expect(fullFits == Regularization.candidates.count + 2)
        // From the grid's choice: never worse (the start is one of the fits).
        let (again, againFits) = try train(near: .init(lambda: full.lambda, scaled: full.scaledLambda))
        #expect((3...6).contains(againFits))
        let againRMSE = try #require(again.validationRMSE), fullRMSE = try #require(full.validationRMSE)
        #expect(againRMSE <= fullRMSE)
        #expect(again.lambdaSelection.contains("near the parent's"))
        // From far too strong a penalty: it walks down.
        let (walked, walkedFits) = try train(near: .init(lambda: 300, scaled: false))
        #expect((3...6).contains(walkedFits))
        #expect(walked.lambda < 300 * 0.56, "chose \(walked.lambda): \(walked.lambdaSelection)")
    }

    /// A thread-safe box for a callback's count.
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        func set(_ value: Int) { lock.lock(); n = value; lock.unlock() }
        var value: Int { lock.lock(); defer { lock.unlock() }; return n }
    }

    /// Each user's starting ridge state is the exact ridge solution under the final features.
    @Test func userStatesAreRidgeSolutionsAndPriorIsTheirMean() throws {
        let ratings = try SyntheticRatings(.init(users: 30, items: 20, ratings: 300, dimension: 2, seed: 3)).ratings()
        let trained = try Trainer(configuration: .init(factors: 3, lambda: 2, iterations: 4)).train(model: "m", number: 1, parent: nil, ratings: ratings)
        let result = try trained.materialized()
        let v = result.version
        let d = v.dimension
        let (uid, state) = result.users[0]
        var a = [Double](repeating: 0, count: d * d), b = [Double](repeating: 0, count: d)
        for k in 0..<d { a[k * d + k] = 2 }
        for r in ratings where r.uid == uid {
            v.features.withFeatures(item: v.features.catalog.row(of: r.item)!) { f, offset in
                for i in 0..<d {
                    b[i] += Double(r.label - offset) * Double(f[i])
                    for j in 0..<d { a[i * d + j] += Double(f[i]) * Double(f[j]) }
                }
            }
        }
        let w = try Cholesky.solve(a, n: d, b)
        for k in 0..<d { #expect(abs(Double(state.weights[k]) - w[k]) < 1e-4) }
        // The mean, summed in Double in training order.
        var sum = [Double](repeating: 0, count: d)
        for u in result.users { for k in 0..<d { sum[k] += Double(u.state.weights[k]) } }
        #expect(v.prior == sum.map { Float($0 / Double(result.users.count)) })
        // Streamed in chunks of any size, the states are the same, in the same order.
        var chunked: [(uid: String, state: RidgeState)] = []
        try trained.users.forEachChunk(size: 7) { chunked += $0 }
        #expect(chunked.map(\.uid) == result.users.map(\.uid))
        #expect(chunked.map(\.state) == result.users.map(\.state))
    }

    @Test func rejectsBadSettings() {
        let r = [Rating(uid: "a", item: "b", label: 1, timestamp: 1)]
        #expect(throws: Trainer.ConfigurationError.self) { try Trainer().train(model: "m", number: 1, parent: nil, ratings: []) }
        #expect(throws: Trainer.ConfigurationError.self) { try Trainer(configuration: .init(factors: 0)).train(model: "m", number: 1, parent: nil, ratings: r) }
        #expect(throws: Trainer.ConfigurationError.self) { try Trainer(configuration: .init(lambda: -1)).train(model: "m", number: 1, parent: nil, ratings: r) }
    }
}
