import Foundation
import OspreyMath

/// The built-in computed feature function: an item's attributes are hashed into a sparse vector
/// `x` of ``buckets`` entries (plus a constant), and a ridge map `W`, fitted when a version is
/// trained, takes it to the factor space: `f = Wᵀx` and `offset = vᵀx`. The map is fitted
/// against the trained items' factor vectors and offsets (``fit(features:attributes:buckets:log:)``),
/// so an item no one has rated is placed where items with its attributes were placed.
///
/// Tokens, each hashed (FNV-1a, 64-bit) to a bucket and a sign:
/// - a string value `s` of attribute `a`: the category `a=s` (lowercased), and when `s` has
///   several words, each word `a~w` with weight 1/√words (text);
/// - each value of a list: the category `a=v`;
/// - a number of an attribute seen at training: its standardized value `z` in bucket `a#`, and
///   the category of its half-standard-deviation band `a@k` (k = ⌊2z⌋ in −6…6). Numbers of
///   attributes the training items never had are ignored.
///
/// Computing a vector costs O(tokens · d); the serving path caches it (``FeatureCache``).
public struct HashedAttributeFeatures: ComputedFeatureFunction, Equatable {
    public static let kind = "hashed-ridge"

    /// The hashed attribute buckets (the map's rows, but for the constant).
    public let buckets: Int
    public let dimension: Int
    /// The ridge penalty the map was fitted with, chosen on held-out items.
    public let lambda: Double
    /// The mean and standard deviation of each numeric attribute over the training items.
    public let numeric: [String: NumericScale]
    /// `(buckets + 1)` rows of `stride` floats: row `b` is bucket `b`'s contribution to the
    /// vector, the last row the constant's.
    let weights: [Float]
    /// `buckets + 1` contributions to the offset, the constant's last.
    let offsetWeights: [Float]
    /// How the fit did: the share of the trained vectors' variance (offset included) the map
    /// explains on held-out items, and the number of items it was fitted on.
    public let heldOutR2: Double, items: Int

    /// An attribute's scale at training.
    public struct NumericScale: Sendable, Codable, Equatable {
        public var mean: Double
        public var deviation: Double

        public init(mean: Double, deviation: Double) {
            self.mean = mean
            self.deviation = deviation
        }
    }

    /// The default number of buckets: a 1,025-square solve per penalty tried when fitting.
    public static let defaultBuckets = 1_024

    var stride: Int { VectorKernels.paddedStride(dimension) }

    // MARK: Tokens

    /// One hashed token: its bucket and its signed weight.
    struct Token: Equatable {
        var bucket: Int
        var value: Float
    }

    /// The tokens of `attributes`, in a fixed order (attribute names sorted). O(total length).
    static func tokens(_ attributes: ItemAttributes, buckets: Int, numeric: [String: NumericScale]) -> [Token] {
        hashedTokens(attributes, numeric: numeric).map { h, value in
            let sign: Float = h >> 63 == 0 ? 1 : -1
            return Token(bucket: Int(h % UInt64(buckets)), value: sign * value)
        }
    }

    /// The tokens of `attributes` as 64-bit hashes with their weights. O(total length).
    static func hashedTokens(_ attributes: ItemAttributes, numeric: [String: NumericScale]) -> [(hash: UInt64, value: Float)] {
        var out: [(hash: UInt64, value: Float)] = []
        func add(_ text: String, _ value: Float) { out.append((fnv1a(text), value)) }
        for name in attributes.keys.sorted() {
            switch attributes[name]! {
            case .string(let s):
                let value = s.lowercased()
                add("\(name)=\(value)", 1)
                let words = Self.words(value)
                if words.count > 1 {
                    let w = 1 / Float(words.count).squareRoot()
                    for word in words { add("\(name)~\(word)", w) }
                }
            case .strings(let list):
                for v in list { add("\(name)=\(v.lowercased())", 1) }
            case .number(let x):
                guard let scale = numeric[name] else { continue }
                let z = (x - scale.mean) / scale.deviation
                add("\(name)#", Float(max(-6, min(6, z))))
                add("\(name)@\(Int(max(-6, min(6, (2 * z).rounded(.down)))))", 1)
            }
        }
        return out
    }

    /// Lowercase letter-or-digit runs of at least two characters.
    static func words(_ s: String) -> [String] {
        s.split { !$0.isLetter && !$0.isNumber }.filter { $0.count >= 2 }.map(String.init)
    }

    /// FNV-1a over the UTF-8 bytes: the same in every process (Swift's `Hasher` is seeded per
    /// process).
    public static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in s.utf8 {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    // MARK: Computing

    public func features(of attributes: ItemAttributes, into vector: UnsafeMutablePointer<Float>) -> Float {
        apply(Self.tokens(attributes, buckets: buckets, numeric: numeric), into: vector)
    }

    // MARK: Fitting

    /// What a fit could not do.
    public struct FitError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Fits the map against the trained vectors of `features`: `attributes` gives each trained
    /// row's attributes (nil or empty: the row is not used). There are at most `buckets`
    /// buckets: fewer when the items have few distinct tokens (the next power of two at or above
    /// four times their number, at least 64), so a small catalogue fits fast. The penalty is chosen
    /// from a few candidates on a tenth of the items held out (by a hash of their ids), then the
    /// map is refitted on all of them. O(items · tokens² + buckets³) per candidate; `log`
    /// receives one line per candidate.
    /// - Throws: ``FitError`` when fewer than 10 trained items have attributes.
    public static func fit(features: MaterializedFeatures, attributes: (Int) -> ItemAttributes?,
                           buckets most: Int = defaultBuckets, log: (String) -> Void = { _ in }) throws -> HashedAttributeFeatures {
        precondition(most >= 1, "at least one bucket")
        var rows: [(row: Int, attributes: ItemAttributes)] = []
        for row in 0..<features.catalog.count {
            if let a = attributes(row), !a.isEmpty { rows.append((row, a)) }
        }
        guard rows.count >= 10 else {
            throw FitError(description: "only \(rows.count) trained items have attributes; the attribute map needs at least 10")
        }
        let numeric = numericScales(rows.map(\.attributes))
        var distinct = Set<UInt64>()
        for r in rows { for t in hashedTokens(r.attributes, numeric: numeric) { distinct.insert(t.hash) } }
        var buckets = 64
        while buckets < 4 * distinct.count, buckets < most { buckets *= 2 }
        buckets = min(buckets, most)
        let samples = rows.map { (row: $0.row, tokens: tokens($0.attributes, buckets: buckets, numeric: numeric)) }
        let held = samples.indices.filter { fnv1a(features.catalog.ids[samples[$0].row]) % 10 == 0 }
        let heldSet = Set(held)
        let train = samples.indices.filter { !heldSet.contains($0) }
        var best: (lambda: Double, error: Double)?
        var r2 = 0.0
        if held.count >= 5, train.count >= 5 {
            let total = varianceSum(held.map { samples[$0].row }, features: features)
            for lambda in [0.3, 3, 30, 300] as [Double] {
                let map = solve(samples, indices: train, features: features, buckets: buckets, lambda: lambda, numeric: numeric, r2: 0, items: train.count)
                let error = squaredError(map, samples, indices: held, features: features)
                log(String(format: "attribute map: lambda %g, held-out R² %.3f (%d items)", lambda, 1 - error / total, held.count))
                if best == nil || error < best!.error { best = (lambda, error) }
            }
            r2 = 1 - best!.error / total
        }
        let lambda = best?.lambda ?? 3
        return solve(samples, indices: Array(samples.indices), features: features, buckets: buckets, lambda: lambda,
                     numeric: numeric, r2: r2, items: samples.count)
    }

    /// Each numeric attribute's mean and standard deviation (1 when all values are equal).
    static func numericScales(_ all: [ItemAttributes]) -> [String: NumericScale] {
        var sums: [String: (n: Double, sum: Double, squares: Double)] = [:]
        for a in all {
            for (name, value) in a {
                if case .number(let x) = value { sums[name, default: (0, 0, 0)] = { ($0.n + 1, $0.sum + x, $0.squares + x * x) }(sums[name, default: (0, 0, 0)]) }
            }
        }
        return sums.mapValues { s in
            let mean = s.sum / s.n
            let variance = max(0, s.squares / s.n - mean * mean)
            return NumericScale(mean: mean, deviation: variance > 1e-12 ? variance.squareRoot() : 1)
        }
    }

    /// The target of row `row`: its vector's `dimension` entries and its offset.
    static func target(_ features: MaterializedFeatures, row: Int) -> [Double] {
        features.withFeatures(item: row) { f, offset in
            (0..<features.dimension).map { Double(f[$0]) } + [Double(offset)]
        }
    }

    /// The summed variance of the targets of `rows` about their mean.
    static func varianceSum(_ rows: [Int], features: MaterializedFeatures) -> Double {
        let targets = rows.map { target(features, row: $0) }
        guard let m = targets.first?.count else { return 0 }
        var total = 0.0
        for j in 0..<m {
            let mean = targets.reduce(0) { $0 + $1[j] } / Double(targets.count)
            total += targets.reduce(0) { $0 + ($1[j] - mean) * ($1[j] - mean) }
        }
        return max(total, 1e-12)
    }

    /// The summed squared error of the map on `indices`.
    static func squaredError(_ map: HashedAttributeFeatures, _ samples: [(row: Int, tokens: [Token])], indices: [Int],
                             features: MaterializedFeatures) -> Double {
        var error = 0.0
        let s = map.stride
        var vector = [Float](repeating: 0, count: s)
        for i in indices {
            let t = target(features, row: samples[i].row)
            let offset = vector.withUnsafeMutableBufferPointer { v in map.apply(samples[i].tokens, into: v.baseAddress!) }
            for j in 0..<map.dimension { error += (Double(vector[j]) - t[j]) * (Double(vector[j]) - t[j]) }
            error += (Double(offset) - t[map.dimension]) * (Double(offset) - t[map.dimension])
        }
        return error
    }

    /// The vector of already hashed tokens (``features(of:into:)`` without the hashing).
    func apply(_ tokens: [Token], into vector: UnsafeMutablePointer<Float>) -> Float {
        let s = stride
        var offset = offsetWeights[buckets]
        weights.withUnsafeBufferPointer { w in
            vector.update(from: w.baseAddress! + buckets * s, count: s)
            for t in tokens {
                VectorKernels.axpy(t.value, w.baseAddress! + t.bucket * s, vector, count: s)
                offset += t.value * offsetWeights[t.bucket]
            }
        }
        return offset
    }

    /// The ridge solution on `indices`, the constant unpenalized: with the buckets centred,
    /// `(XcᵀXc + λI) W = XcᵀYc`, and the constant's row `ȳ − Wᵀx̄`. In Double.
    /// O(items · tokens² + buckets³).
    static func solve(_ samples: [(row: Int, tokens: [Token])], indices: [Int], features: MaterializedFeatures, buckets b: Int,
                      lambda: Double, numeric: [String: NumericScale], r2: Double, items: Int) -> HashedAttributeFeatures {
        let d = features.dimension
        let m = d + 1
        let n = Double(indices.count)
        var gram = [Double](repeating: 0, count: b * b)
        var cross = [Double](repeating: 0, count: b * m)
        var xMean = [Double](repeating: 0, count: b)
        var yMean = [Double](repeating: 0, count: m)
        for i in indices {
            let y = target(features, row: samples[i].row)
            // Repeated buckets in one item add up, as they do when the vector is computed.
            var x: [Int: Double] = [:]
            for t in samples[i].tokens { x[t.bucket, default: 0] += Double(t.value) }
            for (p, vp) in x {
                xMean[p] += vp
                for (q, vq) in x { gram[p * b + q] += vp * vq }
                for j in 0..<m { cross[p * m + j] += vp * y[j] }
            }
            for j in 0..<m { yMean[j] += y[j] }
        }
        for p in 0..<b { xMean[p] /= n }
        for j in 0..<m { yMean[j] /= n }
        for p in 0..<b {
            for q in 0..<b { gram[p * b + q] -= n * xMean[p] * xMean[q] }
            gram[p * b + p] += lambda
            for j in 0..<m { cross[p * m + j] -= n * xMean[p] * yMean[j] }
        }
        // λ > 0 makes the centred Gram matrix positive definite.
        try! Cholesky.factor(&gram, n: b)
        let s = VectorKernels.paddedStride(d)
        var weights = [Float](repeating: 0, count: (b + 1) * s)
        var offsetWeights = [Float](repeating: 0, count: b + 1)
        var intercept = yMean
        var column = [Double](repeating: 0, count: b)
        for j in 0..<m {
            for p in 0..<b { column[p] = cross[p * m + j] }
            Cholesky.solve(factor: gram, n: b, &column)
            for p in 0..<b {
                intercept[j] -= column[p] * xMean[p]
                if j < d { weights[p * s + j] = Float(column[p]) } else { offsetWeights[p] = Float(column[p]) }
            }
        }
        for j in 0..<d { weights[b * s + j] = Float(intercept[j]) }
        offsetWeights[b] = Float(intercept[d])
        return HashedAttributeFeatures(buckets: b, dimension: d, lambda: lambda, numeric: numeric, weights: weights,
                                       offsetWeights: offsetWeights, heldOutR2: r2, items: items)
    }

    // MARK: Storage

    /// The stored header; the floats follow it.
    private struct Header: Codable {
        var buckets: Int, dimension: Int, lambda: Double, numeric: [String: NumericScale], heldOutR2: Double, items: Int
    }

    /// A 4-byte little-endian header length, the header as JSON, then the weights and the offset
    /// weights as little-endian Float32.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let header = try encoder.encode(Header(buckets: buckets, dimension: dimension, lambda: lambda, numeric: numeric,
                                               heldOutR2: heldOutR2, items: items))
        var data = Data()
        LittleEndianWords.append([UInt32(header.count)], to: &data)
        data.append(header)
        LittleEndianWords.append((weights + offsetWeights).map(\.bitPattern), to: &data)
        return data
    }

    public init(encoded data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 4, let first = LittleEndianWords.words(bytes[0..<4])?.first else {
            throw FitError(description: "attribute map: too short")
        }
        let length = Int(first)
        guard length <= bytes.count - 4,
              let h = try? JSONDecoder().decode(Header.self, from: Data(bytes[4..<(4 + length)])),
              h.buckets >= 1, h.dimension >= 1, h.buckets <= 1 << 24, h.dimension <= 4096
        else { throw FitError(description: "attribute map: unreadable header") }
        let s = VectorKernels.paddedStride(h.dimension)
        let count = (h.buckets + 1) * s + h.buckets + 1
        guard bytes.count - 4 - length == count * 4, let words = LittleEndianWords.words(bytes[(4 + length)...]) else {
            throw FitError(description: "attribute map: \(bytes.count - 4 - length) bytes of weights, expected \(count * 4)")
        }
        let floats = words.map { Float(bitPattern: $0) }
        self.init(buckets: h.buckets, dimension: h.dimension, lambda: h.lambda, numeric: h.numeric,
                  weights: Array(floats[0..<((h.buckets + 1) * s)]), offsetWeights: Array(floats[((h.buckets + 1) * s)...]),
                  heldOutR2: h.heldOutR2, items: h.items)
    }

    /// The map of a model no one has trained yet (made by `POST /v1/models`): each of `factors`
    /// buckets is one factor, so an item's vector is its hashed attributes themselves, with the
    /// constant 1 last (the user bias's feature, as in a trained `[q_i; 1]`), and every item's
    /// offset is `mean`. Users learn a linear model of the attributes from their first
    /// observation; numeric attributes count when `numeric` gives their scale. The first retrain
    /// with ratings fits a real map in its place. O(factors²).
    public static func unfitted(factors: Int, mean: Float, numeric: [String: NumericScale]) -> HashedAttributeFeatures {
        precondition(factors >= 1, "a model has at least one factor")
        let dimension = factors + 1
        let s = VectorKernels.paddedStride(dimension)
        var weights = [Float](repeating: 0, count: (factors + 1) * s)
        for b in 0...factors { weights[b * s + b] = 1 }
        var offsets = [Float](repeating: 0, count: factors + 1)
        offsets[factors] = mean
        return HashedAttributeFeatures(buckets: factors, dimension: dimension, lambda: 0, numeric: numeric, weights: weights,
                                       offsetWeights: offsets, heldOutR2: 0, items: 0)
    }

    init(buckets: Int, dimension: Int, lambda: Double, numeric: [String: NumericScale], weights: [Float], offsetWeights: [Float],
         heldOutR2: Double, items: Int) {
        self.buckets = buckets
        self.dimension = dimension
        self.lambda = lambda
        self.numeric = numeric
        self.weights = weights
        self.offsetWeights = offsetWeights
        self.heldOutR2 = heldOutR2
        self.items = items
    }
}

extension Trainer.Result {
    /// Fits θ's computed part (``HashedAttributeFeatures``) on the trained items' attributes
    /// (`attributes(id)`, nil or empty for an item without), when at least 10 trained items have
    /// some; else leaves it nil, and the version serves other items as the mean item. `log`
    /// receives one line per penalty tried and one for the outcome.
    public mutating func fitAttributeMap(attributes: (String) -> ItemAttributes?, buckets: Int = HashedAttributeFeatures.defaultBuckets,
                                         log: (String) -> Void) {
        let ids = features.catalog.ids
        do {
            let map = try HashedAttributeFeatures.fit(features: features, attributes: { attributes(ids[$0]) }, buckets: buckets, log: log)
            log(String(format: "attribute map: %d items, %d buckets, lambda %g, held-out R² %.3f",
                       map.items, map.buckets, map.lambda, map.heldOutR2))
            computed = map
        } catch {
            log("no attribute map: \(error); items without a trained vector score as the mean item")
            computed = nil
        }
    }
}
