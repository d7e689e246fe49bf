import Foundation
import OspreyMath
import Testing
@testable import OspreyModel

/// A version of factors trained elsewhere, checked against direct Double solves.
struct FactorImportTests {
    static let d = 3

    /// Six items with random vectors and offsets.
    static let items: ImportedFactors = {
        var rng = SplitMix64(seed: 11)
        let ids = (0..<6).map { "i\($0)" }
        let vectors = (0..<(ids.count * d)).map { _ in Float(rng.nextGaussian()) }
        let offsets = ids.indices.map { _ in Float(rng.nextUniform() * 2 - 1) }
        return ImportedFactors(dimension: d, ids: ids, vectors: vectors, offsets: offsets, path: "/data/items.json")
    }()

    /// Imported weights: `a` (with ratings) and `lonely` (without any).
    static let users = ImportedFactors(dimension: d, ids: ["a", "lonely"], vectors: [0.5, -1, 2, 0.25, 0.75, -0.5], offsets: [0, 0],
                                       path: "/data/users.json")

    /// Ratings: `a` rates imported items and one the import lacks, `b` (no imported weights)
    /// rates imported items, `gone` rates only an item the import lacks.
    static let ratings: [Rating] = {
        var rng = SplitMix64(seed: 5)
        var out: [Rating] = []
        func add(_ uid: String, _ item: String) { out.append(Rating(uid: uid, item: item, label: Float(rng.nextUniform() * 5), timestamp: 0)) }
        for item in ["i0", "i1", "i3", "i4", "i5"] { add("a", item) }
        add("a", "elsewhere")
        for item in ["i0", "i2", "i2", "i3"] { add("b", item) }
        add("gone", "elsewhere")
        add("gone", "missing")
        add("b", "missing")
        return out
    }()

    func item(_ id: String) -> (f: [Double], offset: Double)? {
        guard let i = Self.items.ids.firstIndex(of: id) else { return nil }
        return (Self.items.vector(i).map(Double.init), Double(Self.items.offsets[i]))
    }

    /// `λ'I + Σ f fᵀ` and `Σ (y − offset) f` over `uid`'s ratings of imported items, with the
    /// penalty λ' = λ (or λ·n, at least λ·1, when scaled).
    func system(_ uid: String, _ r: Regularization) -> (a: [Double], b: [Double], n: Int) {
        let d = Self.d
        let known = Self.ratings.filter { $0.uid == uid && item($0.item) != nil }
        let penalty = Double(r.lambda) * (r.scaled ? Double(max(1, known.count)) : 1)
        var a = [Double](repeating: 0, count: d * d), b = [Double](repeating: 0, count: d)
        for k in 0..<d { a[k * d + k] = penalty }
        for rating in known {
            let (f, offset) = item(rating.item)!
            for i in 0..<d {
                b[i] += (Double(rating.label) - offset) * f[i]
                for j in 0..<d { a[i * d + j] += f[i] * f[j] }
            }
        }
        return (a, b, known.count)
    }

    /// Solves `a x = b` by Gaussian elimination with partial pivoting, in Double.
    func solve(_ a: [Double], _ b: [Double]) -> [Double] {
        let n = b.count
        var m = a, x = b
        for c in 0..<n {
            let p = (c..<n).max { abs(m[$0 * n + c]) < abs(m[$1 * n + c]) }!
            if p != c {
                for k in 0..<n { m.swapAt(c * n + k, p * n + k) }
                x.swapAt(c, p)
            }
            for r in (c + 1)..<n {
                let factor = m[r * n + c] / m[c * n + c]
                for k in c..<n { m[r * n + k] -= factor * m[c * n + k] }
                x[r] -= factor * x[c]
            }
        }
        for r in stride(from: n - 1, through: 0, by: -1) {
            var s = x[r]
            for k in (r + 1)..<n { s -= m[r * n + k] * x[k] }
            x[r] = s / m[r * n + r]
        }
        return x
    }

    func multiply(_ a: [Double], _ w: [Double]) -> [Double] {
        let n = w.count
        return (0..<n).map { r in (0..<n).reduce(0) { $0 + a[r * n + $1] * w[$1] } }
    }

    func imported(_ uid: String) -> [Double] {
        Self.users.vector(Self.users.ids.firstIndex(of: uid)!).map(Double.init)
    }

    func result(_ r: Regularization, users: ImportedFactors? = Self.users, ratings: [Rating] = Self.ratings) throws
        -> (version: ModelVersion, states: [String: RidgeState]) {
        let result = try FactorImport(items: Self.items, users: users, regularization: r)
            .result(model: "m", number: 3, parent: 2, ratings: ratings).materialized()
        return (result.version, Dictionary(uniqueKeysWithValues: result.users.map { ($0.uid, $0.state) }))
    }

    func expectClose(_ x: [Float], _ y: [Double], _ what: String, tolerance: Double = 1e-4,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(x.count >= y.count, sourceLocation: sourceLocation)
        let gap = zip(x, y).map { abs(Double($0) - $1) }.max() ?? 0
        #expect(gap <= tolerance * max(1, y.map(abs).max() ?? 0), "\(what): \(Array(x.prefix(y.count))) vs \(y)", sourceLocation: sourceLocation)
    }

    func expectClose(_ x: [Double], _ y: [Double], _ what: String, tolerance: Double = 1e-4,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        expectClose(x.map(Float.init), y, what, tolerance: tolerance, sourceLocation: sourceLocation)
    }

    static let regularizations = [Regularization(lambda: 0.7, scaled: false), Regularization(lambda: 0.3, scaled: true)]

    /// A user with imported weights keeps them, and its state's Gram matrix is its ratings':
    /// one online update lands where a direct solve of `(A + f fᵀ) w' = A w + y f` does.
    @Test(arguments: regularizations)
    func importedWeightsAreKeptUnderTheRatingsGram(r: Regularization) throws {
        let (_, states) = try result(r)
        let state = try #require(states["a"])
        let w = imported("a")
        let (a, _, n) = system("a", r)
        #expect(n == 5, "the rating of an item the import lacks is left out")
        expectClose(state.weights, w, "imported weights")
        expectClose(state.gramMatrix(), a, "A = λI + Σ f fᵀ", tolerance: 1e-5)
        expectClose(state.rhs, multiply(a, w), "b = A w", tolerance: 1e-5)

        let f: [Float] = [0.3, -1.2, 0.8], y: Float = 4.5
        var updated = state
        let padded = f + [Float](repeating: 0, count: state.stride - f.count)
        padded.withUnsafeBufferPointer { _ = updated.update(features: $0.baseAddress!, target: y) }
        var next = a
        for i in 0..<Self.d { for j in 0..<Self.d { next[i * Self.d + j] += Double(f[i]) * Double(f[j]) } }
        let rhs = zip(multiply(a, w), f).map { $0 + Double(y) * Double($1) }
        let expected = solve(next, rhs)
        expectClose(updated.weights, expected, "after one update")
        // A refactor from A and b (not the Sherman–Morrison step) lands there too.
        try updated.refactor()
        expectClose(updated.weights, expected, "after one update and a refactor")
    }

    /// A user without imported weights is the ridge solution of its ratings of imported items
    /// (with a scaled λ, penalized λ·n).
    @Test(arguments: regularizations)
    func aUserWithoutWeightsIsFittedToItsRatings(r: Regularization) throws {
        let (_, states) = try result(r)
        let state = try #require(states["b"])
        let (a, b, n) = system("b", r)
        #expect(n == 4)
        expectClose(state.weights, solve(a, b), "ridge solution")
        expectClose(state.gramMatrix(), a, "gram", tolerance: 1e-5)
        // And with no users imported at all.
        let (_, alone) = try result(r, users: nil)
        expectClose(try #require(alone["b"]).weights, solve(a, b), "ridge solution without imported users")
        let (aa, ba, _) = system("a", r)
        expectClose(try #require(alone["a"]).weights, solve(aa, ba), "a fitted when not imported")
    }

    /// Ratings of items the import lacks are left out; a user left with nothing is not stored;
    /// an imported user with no ratings is, with the bare penalty.
    @Test(arguments: regularizations)
    func ratingsOfOtherItemsAreLeftOut(r: Regularization) throws {
        let (version, states) = try result(r)
        #expect(Set(states.keys) == ["a", "b", "lonely"])
        #expect(version.metadata.ratings == 9)
        #expect(version.features.catalog.row(of: "elsewhere") == nil)
        let lonely = try #require(states["lonely"])
        expectClose(lonely.weights, imported("lonely"), "imported weights without ratings")
        let d = Self.d
        let bare = (0..<(d * d)).map { $0 % (d + 1) == 0 ? Double(r.lambda) : 0 }
        expectClose(lonely.gramMatrix(), bare, "λ·I", tolerance: 1e-6)
        // Only ratings of other items, and no imported users: nobody is stored, every user will
        // start from the prior (item embeddings made elsewhere, users learned here).
        let (alone, nobody) = try result(r, users: nil, ratings: Self.ratings.filter { $0.uid == "gone" })
        #expect(nobody.isEmpty && alone.metadata.ratings == 0 && alone.metadata.trainingRMSE == nil)
    }

    @Test func dimensionsMustMatch() throws {
        let users = ImportedFactors(dimension: 2, ids: ["a"], vectors: [1, 2], offsets: [0], path: "u")
        #expect(throws: Trainer.ConfigurationError.self) { try result(.init(lambda: 1, scaled: false), users: users) }
        #expect(throws: Trainer.ConfigurationError.self) { try result(.init(lambda: 0, scaled: false)) }
    }

    /// The version: θ is the items' vectors with their offsets, its metadata says what was
    /// imported, and its training RMSE is the users' error on their ratings of imported items.
    @Test func theVersionAndItsTrainingRMSE() throws {
        let r = Regularization(lambda: 0.7, scaled: false)
        let (version, states) = try result(r)
        #expect(version.number == 3 && version.parent == 2 && version.dimension == Self.d)
        #expect(version.metadata.trigger == "import")
        let source = try #require(version.metadata.source)
        #expect(source.contains("/data/items.json") && source.contains("/data/users.json"), "\(source)")
        #expect(version.metadata.factors == Self.d && version.metadata.lambda == 0.7 && !version.metadata.scaledLambda)

        // Weights as the reference has them: imported ones, or the ridge solution.
        func weights(_ uid: String) -> [Double] {
            if uid == "a" { return imported("a") }
            let (a, b, _) = system(uid, r)
            return solve(a, b)
        }
        var sum = 0.0, n = 0
        for rating in Self.ratings {
            guard let known = item(rating.item) else { continue }
            let (f, offset) = known
            let w = weights(rating.uid)
            let e = zip(w, f).reduce(offset) { $0 + $1.0 * $1.1 } - Double(rating.label)
            sum += e * e
            n += 1
        }
        let rmse = try #require(version.metadata.trainingRMSE)
        #expect(abs(rmse - (sum / Double(n)).squareRoot()) < 1e-4, "\(rmse) vs \((sum / Double(n)).squareRoot())")

        // Predictions are w·f + offset, and a zero user scores each item at its offset.
        let zero = [Float](repeating: 0, count: version.features.stride)
        for (i, id) in Self.items.ids.enumerated() {
            let row = try #require(version.features.catalog.row(of: id))
            let (f, offset) = item(id)!
            let expected = zip(imported("a"), f).reduce(offset) { $0 + $1.0 * $1.1 }
            let score = try #require(states["a"]).weights.withUnsafeBufferPointer { version.features.score(weights: $0.baseAddress!, item: row) }
            #expect(abs(Double(score) - expected) < 1e-4, "\(id): \(score) vs \(expected)")
            #expect(zero.withUnsafeBufferPointer { version.features.score(weights: $0.baseAddress!, item: row) } == Self.items.offsets[i])
        }

        // Without ratings there is no training error.
        let bare = try result(r, ratings: [])
        #expect(bare.version.metadata.trainingRMSE == nil && bare.version.metadata.ratings == 0)
        #expect(Set(bare.states.keys) == ["a", "lonely"])
        expectClose(try #require(bare.states["a"]).weights, imported("a"), "imported weights without ratings")
    }
}
