import Testing
@testable import OspreyMath

/// ALS against a known synthetic low-rank model.
struct ALSTests {
    @Test func recoversALowRankModel() {
        var rng = SplitMix64(seed: 11)
        let users = 200, items = 100, d = 3
        let p = (0..<(users * d)).map { _ in rng.nextGaussian() }
        let q = (0..<(items * d)).map { _ in rng.nextGaussian() }
        var us = [Int32](), its = [Int32](), labels = [Float]()
        var heldU = [Int32](), heldI = [Int32](), heldL = [Float]()
        for u in 0..<users {
            for i in 0..<items where rng.nextUniform() < 0.5 {
                var y = 3.0
                for k in 0..<d { y += p[u * d + k] * q[i * d + k] }
                y += rng.nextGaussian() * 0.1
                if rng.nextUniform() < 0.1 {
                    heldU.append(Int32(u)); heldI.append(Int32(i)); heldL.append(Float(y))
                } else {
                    us.append(Int32(u)); its.append(Int32(i)); labels.append(Float(y))
                }
            }
        }
        let f = ALS.train(userCount: users, itemCount: items, users: us, items: its, labels: labels,
                          configuration: .init(dimension: d, lambda: 1, iterations: 15, seed: 1, threads: 2))
        let heldOut = f.rmse(users: heldU, items: heldI, labels: heldL)
        // Noise σ = 0.1 on labels of spread ~1.7: a fit must get close to the noise floor.
        #expect(heldOut < 0.15, "held-out RMSE \(heldOut)")
        #expect(f.rmse(users: us, items: its, labels: labels) < 0.12)
    }

    /// Without biases the vectors are plain `p_u`, `q_i` (no constant feature, zero item biases);
    /// on data with strong user and item biases a rank-3 fit without them falls well short of
    /// one with them.
    @Test func fitsWithAndWithoutBiases() {
        var rng = SplitMix64(seed: 12)
        let users = 200, items = 100, d = 3
        let p = (0..<(users * d)).map { _ in rng.nextGaussian() }
        let q = (0..<(items * d)).map { _ in rng.nextGaussian() }
        let bu = (0..<users).map { _ in rng.nextGaussian() }
        let bi = (0..<items).map { _ in rng.nextGaussian() }
        var us = [Int32](), its = [Int32](), labels = [Float]()
        var heldU = [Int32](), heldI = [Int32](), heldL = [Float]()
        for u in 0..<users {
            for i in 0..<items where rng.nextUniform() < 0.5 {
                var y = 3 + bu[u] + bi[i]
                for k in 0..<d { y += p[u * d + k] * q[i * d + k] }
                y += rng.nextGaussian() * 0.1
                if rng.nextUniform() < 0.1 {
                    heldU.append(Int32(u)); heldI.append(Int32(i)); heldL.append(Float(y))
                } else {
                    us.append(Int32(u)); its.append(Int32(i)); labels.append(Float(y))
                }
            }
        }
        func fit(biases: Bool) -> ALS.Factors {
            ALS.train(userCount: users, itemCount: items, users: us, items: its, labels: labels,
                      configuration: .init(dimension: d, lambda: 1, iterations: 15, seed: 1, threads: 2, biases: biases))
        }
        let with = fit(biases: true), without = fit(biases: false)
        #expect(with.dimension == d + 1 && without.dimension == d)
        #expect(without.itemBiases.allSatisfy { $0 == 0 })
        #expect((0..<items).allSatisfy { with.itemFeatures[$0 * with.stride + d] == 1 })
        #expect((0..<items).allSatisfy { i in (d..<without.stride).allSatisfy { without.itemFeatures[i * without.stride + $0] == 0 } })
        let heldWith = with.rmse(users: heldU, items: heldI, labels: heldL)
        let heldWithout = without.rmse(users: heldU, items: heldI, labels: heldL)
        #expect(heldWith < 0.2, "with biases: held-out RMSE \(heldWith)")
        #expect(heldWithout > 2 * heldWith, "without biases: held-out RMSE \(heldWithout), with: \(heldWith)")
    }

    @Test func choleskySolvesAndInverts() throws {
        let a: [Double] = [4, 2, 0.6, 2, 5, 1, 0.6, 1, 3]
        let x = try Cholesky.solve(a, n: 3, [1, 2, 3])
        for i in 0..<3 {
            var s = 0.0
            for j in 0..<3 { s += a[i * 3 + j] * x[j] }
            #expect(abs(s - Double(i + 1)) < 1e-12)
        }
        let inv = try Cholesky.inverse(a, n: 3)
        for i in 0..<3 { for j in 0..<3 {
            var s = 0.0
            for k in 0..<3 { s += a[i * 3 + k] * inv[k * 3 + j] }
            #expect(abs(s - (i == j ? 1 : 0)) < 1e-12)
        } }
        #expect(throws: Cholesky.NotPositiveDefinite.self) { try Cholesky.solve([1, 2, 2, 1], n: 2, [1, 1]) }
    }
}
