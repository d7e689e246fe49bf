import Testing
@testable import OspreyMath

/// ALS against a known synthetic low-rank model.
struct ALSTests {
    /// Ratings of a rank-3 model (200 users × 100 items, about half observed, label noise
    /// σ = 0.1, mean 3, optionally with N(0, 1) user and item biases), 10% held out.
    struct Ratings {
        static let users = 200, items = 100, d = 3
        var users = [Int32](), items = [Int32](), labels = [Float]()
        var heldUsers = [Int32](), heldItems = [Int32](), heldLabels = [Float]()

        init(seed: UInt64, biases: Bool) {
            var rng = SplitMix64(seed: seed)
            let (users, items, d) = (Self.users, Self.items, Self.d)
            let p = (0..<(users * d)).map { _ in rng.nextGaussian() }
            let q = (0..<(items * d)).map { _ in rng.nextGaussian() }
            let bu = biases ? (0..<users).map { _ in rng.nextGaussian() } : [Double](repeating: 0, count: users)
            let bi = biases ? (0..<items).map { _ in rng.nextGaussian() } : [Double](repeating: 0, count: items)
            for u in 0..<users {
                for i in 0..<items where rng.nextUniform() < 0.5 {
                    var y = 3 + bu[u] + bi[i]
                    for k in 0..<d { y += p[u * d + k] * q[i * d + k] }
                    y += rng.nextGaussian() * 0.1
                    if rng.nextUniform() < 0.1 {
                        heldUsers.append(Int32(u)); heldItems.append(Int32(i)); heldLabels.append(Float(y))
                    } else {
                        self.users.append(Int32(u)); self.items.append(Int32(i)); labels.append(Float(y))
                    }
                }
            }
        }

        func fit(biases: Bool = true) -> ALS.Factors {
            ALS.train(userCount: Self.users, itemCount: Self.items, users: users, items: items, labels: labels,
                      configuration: .init(dimension: Self.d, lambda: 1, iterations: 15, seed: 1, threads: 2, biases: biases))
        }

        func heldOutRMSE(_ f: ALS.Factors) -> Double { f.rmse(users: heldUsers, items: heldItems, labels: heldLabels) }
    }

    @Test func recoversALowRankModel() {
        let data = Ratings(seed: 11, biases: false)
        let f = data.fit()
        let heldOut = data.heldOutRMSE(f)
        // Noise σ = 0.1 on labels of spread ~1.7: a fit must get close to the noise floor.
        #expect(heldOut < 0.15, "held-out RMSE \(heldOut)")
        #expect(f.rmse(users: data.users, items: data.items, labels: data.labels) < 0.12)
    }

    /// Without biases the vectors are plain `p_u`, `q_i` (no constant feature, zero item biases);
    /// on data with strong user and item biases a rank-3 fit without them falls well short of
    /// one with them.
    @Test func fitsWithAndWithoutBiases() {
        let data = Ratings(seed: 12, biases: true)
        let d = Ratings.d
        let with = data.fit(biases: true), without = data.fit(biases: false)
        #expect(with.dimension == d + 1 && without.dimension == d)
        #expect(without.itemBiases.allSatisfy { $0 == 0 })
        #expect((0..<Ratings.items).allSatisfy { with.itemFeatures[$0 * with.stride + d] == 1 })
        #expect((0..<Ratings.items).allSatisfy { i in (d..<without.stride).allSatisfy { without.itemFeatures[i * without.stride + $0] == 0 } })
        let heldWith = data.heldOutRMSE(with), heldWithout = data.heldOutRMSE(without)
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
