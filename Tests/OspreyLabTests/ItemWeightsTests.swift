import OspreyMath
import OspreyModel
import Testing
@testable import OspreyLab

/// Item-side online updates checked against a direct ridge solve of each item's regression.
struct ItemWeightsTests {
    /// 4 items with 2 factors and the constant bias feature (dimension 3), 6 users with random
    /// weights `[p_u; c_u]` (padded to the stride), and 30 training ratings.
    struct Fixture {
        let features: MaterializedFeatures
        let users: [String: [Float]]
        let ratings: [Rating]
        let mean: Float = 3.5

        init() {
            var rng = SplitMix64(seed: 9)
            let dim = 3, s = VectorKernels.paddedStride(dim)
            let ids = ["a", "b", "c", "d"]
            var table = [Float](repeating: 0, count: ids.count * s)
            for i in 0..<ids.count {
                table[i * s] = Float(rng.nextGaussian())
                table[i * s + 1] = Float(rng.nextGaussian())
                table[i * s + 2] = 1
            }
            features = MaterializedFeatures(dimension: dim, ids: ids, table: table, offsets: ids.map { _ in 3.5 + Float(rng.nextGaussian()) * 0.5 })
            var users: [String: [Float]] = [:]
            for u in 0..<6 {
                users["u\(u)"] = [Float(rng.nextGaussian()), Float(rng.nextGaussian()), Float(rng.nextGaussian()) * 0.5] + [Float](repeating: 0, count: s - dim)
            }
            self.users = users
            ratings = (0..<30).map { n in
                Rating(uid: "u\(n % 6)", item: ids[(n / 6 + n) % 4], label: 3.5 + Float(rng.nextGaussian()), timestamp: Double(n))
            }
        }

        /// The regression of `item`: features `g_u` and targets over `ratings`.
        func rows(item: String, ratings: [Rating], users: [String: [Float]], learnsOffset: Bool) -> [(g: [Double], t: Double)] {
            let row = features.catalog.row(of: item)!
            return ratings.filter { $0.item == item }.map { r in
                let w = users[r.uid]!
                let g = [Double(w[0]), Double(w[1])] + (learnsOffset ? [1] : [])
                let t = Double(r.label) - Double(w[2]) - (learnsOffset ? 0 : Double(features.offsets[row]))
                return (g, t)
            }
        }
    }

    /// `(λI + A₀ + Σ g gᵀ)⁻¹ (b₀ + Σ t g)`: the direct ridge solve, with a starting `A₀`, `b₀`.
    static func solve(_ rows: [(g: [Double], t: Double)], a0: [Double], b0: [Double]) throws -> [Double] {
        let m = b0.count
        var a = a0, b = b0
        for (g, t) in rows {
            for p in 0..<m {
                b[p] += t * g[p]
                for q in 0..<m { a[p * m + q] += g[p] * g[q] }
            }
        }
        return try Cholesky.solve(a, n: m, b)
    }

    static func identity(_ m: Int, _ lambda: Double) -> [Double] {
        (0..<(m * m)).map { $0 / m == $0 % m ? lambda : 0 }
    }

    /// Row and offset of `item` as the parameter vector `[q; o]` (or `[q]`).
    static func parameters(_ items: ItemWeights, _ item: String, learnsOffset: Bool) -> [Double] {
        let row = items.catalog.row(of: item)!
        return items.withFeatures(item: row) { f, offset in [Double(f[0]), Double(f[1])] + (learnsOffset ? [Double(offset)] : []) }
    }

    static func expectClose(_ x: [Double], _ y: [Double], _ note: Comment? = nil) {
        #expect(x.count == y.count)
        for k in 0..<min(x.count, y.count) { #expect(abs(x[k] - y[k]) < 1e-3 * max(1, abs(y[k])), note) }
    }

    /// Observations streamed after training: each item seen a few times, by changed user weights.
    static func stream(_ f: Fixture) -> (ratings: [Rating], users: [String: [Float]]) {
        var rng = SplitMix64(seed: 77)
        var users = f.users
        for uid in users.keys.sorted() { users[uid]![0] += Float(rng.nextGaussian()) * 0.3 }
        let ratings = (0..<40).map { n in
            Rating(uid: "u\((n * 5) % 6)", item: ["a", "b", "c", "d"][n % 4], label: 3 + Float(rng.nextGaussian()), timestamp: Double(100 + n))
        }
        return (ratings, users)
    }

    @Test(arguments: [true, false])
    func ridgeSolutionStartAndUpdatesMatchADirectSolve(learnsOffset: Bool) throws {
        let f = Fixture()
        let lambda = 0.7
        var items = try ItemWeights(
            features: f.features, ratings: f.ratings, userWeights: { f.users[$0] },
            configuration: .init(lambda: Float(lambda), learnsOffset: learnsOffset, start: .ridgeSolution(mean: f.mean)))
        let m = learnsOffset ? 3 : 2
        // The offset is shrunk towards μ, the factors towards 0 (ALS's penalty λ(‖q‖² + b²)).
        let prior: [Double] = learnsOffset ? [0, 0, Double(f.mean)] : [0, 0]
        for item in ["a", "b", "c", "d"] {
            let rows = f.rows(item: item, ratings: f.ratings, users: f.users, learnsOffset: learnsOffset)
            let x = try Self.solve(rows, a0: Self.identity(m, lambda), b0: prior.map { lambda * $0 })
            Self.expectClose(Self.parameters(items, item, learnsOffset: learnsOffset), x, "start of \(item)")
        }
        let (stream, users) = Self.stream(f)
        for r in stream {
            users[r.uid]!.withUnsafeBufferPointer { _ = items.learn(item: items.catalog.row(of: r.item)!, userWeights: $0.baseAddress!, label: r.label) }
        }
        for item in ["a", "b", "c", "d"] {
            let rows = f.rows(item: item, ratings: f.ratings, users: f.users, learnsOffset: learnsOffset)
                + f.rows(item: item, ratings: stream, users: users, learnsOffset: learnsOffset)
            let x = try Self.solve(rows, a0: Self.identity(m, lambda), b0: prior.map { lambda * $0 })
            Self.expectClose(Self.parameters(items, item, learnsOffset: learnsOffset), x, "after the stream, \(item)")
        }
        // The constant bias feature is left alone.
        #expect(items.table[items.stride * 2 + 2] == 1)
    }

    /// Starting from the served rows: nothing moves until an item is observed; afterwards each
    /// row is the ridge solution with the served row as a prior of precision `A_i` (training).
    @Test func servedRowsStartKeepsTheRowsThenLearnsExactly() throws {
        let f = Fixture()
        let lambda = 0.4
        var items = try ItemWeights(
            features: f.features, ratings: f.ratings, userWeights: { f.users[$0] },
            configuration: .init(lambda: Float(lambda), scaledLambda: true))
        for item in ["a", "b", "c", "d"] {
            let row = f.features.catalog.row(of: item)!
            let served = [Double(f.features.table[row * f.features.stride]), Double(f.features.table[row * f.features.stride + 1]), Double(f.features.offsets[row])]
            Self.expectClose(Self.parameters(items, item, learnsOffset: true), served, "start of \(item)")
        }
        let (stream, users) = Self.stream(f)
        for r in stream where r.item != "d" {
            users[r.uid]!.withUnsafeBufferPointer { _ = items.learn(item: items.catalog.row(of: r.item)!, userWeights: $0.baseAddress!, label: r.label) }
        }
        for item in ["a", "b", "c", "d"] {
            let row = f.features.catalog.row(of: item)!
            let served = [Double(f.features.table[row * f.features.stride]), Double(f.features.table[row * f.features.stride + 1]), Double(f.features.offsets[row])]
            let training = f.rows(item: item, ratings: f.ratings, users: f.users, learnsOffset: true)
            // A₀ = λ·n_i·I + Σ_training g gᵀ, b₀ = A₀ · served row.
            var a0 = Self.identity(3, lambda * Double(training.count))
            for (g, _) in training { for p in 0..<3 { for q in 0..<3 { a0[p * 3 + q] += g[p] * g[q] } } }
            let b0 = (0..<3).map { p in (0..<3).reduce(0.0) { $0 + a0[p * 3 + $1] * served[$1] } }
            let x = try Self.solve(f.rows(item: item, ratings: item == "d" ? [] : stream, users: users, learnsOffset: true), a0: a0, b0: b0)
            Self.expectClose(Self.parameters(items, item, learnsOffset: true), x, "after the stream, \(item)")
        }
        #expect(items.materialized().table == items.table)
    }

    /// Without the bias feature (a model fitted without biases) every user weight is a factor.
    @Test func withoutABiasFeatureEveryWeightIsAFactor() throws {
        let ids = ["a"]
        let features = MaterializedFeatures(dimension: 2, ids: ids, table: [0.5, -0.2, 0, 0, 0, 0, 0, 0], offsets: [3])
        let users: [String: [Float]] = ["x": [1, 2, 0, 0, 0, 0, 0, 0], "y": [-1, 0.5, 0, 0, 0, 0, 0, 0]]
        let ratings = [Rating(uid: "x", item: "a", label: 4, timestamp: 1), Rating(uid: "y", item: "a", label: 2, timestamp: 2)]
        var items = try ItemWeights(features: features, ratings: ratings, userWeights: { users[$0] },
                                    configuration: .init(lambda: 1, hasBiasFeature: false, start: .ridgeSolution(mean: 3)))
        users["x"]!.withUnsafeBufferPointer { _ = items.learn(item: 0, userWeights: $0.baseAddress!, label: 5) }
        // Features [w; 1], targets y, prior [0, 0, μ].
        let rows: [(g: [Double], t: Double)] = [([1, 2, 1], 4), ([-1, 0.5, 1], 2), ([1, 2, 1], 5)]
        let x = try Self.solve(rows, a0: Self.identity(3, 1), b0: [0, 0, 3])
        Self.expectClose([Double(items.table[0]), Double(items.table[1]), Double(items.offsets[0])], x)
    }
}
