import OspreyMath

/// Synthetic ratings from a known latent-factor model, so tests and benchmarks need no download.
///
/// `label = μ + b_u + b_i + p_u · q_i + ε` with `p_u, q_i ~ N(0, d^-1/2 I)` (so `p_u · q_i` has
/// unit variance), biases `~ N(0, 0.5²)`, noise `ε ~ N(0, σ²)`. Items are drawn with Zipf
/// popularity (item k has weight `1/(k+1)^s`), users uniformly, each (user, item) pair at most once.
/// The same configuration always yields the same ratings.
///
/// With `drift` > 0 users' tastes change: ratings from the `driftAt` share of the file onwards use
/// `p'_u = √(1 − drift²) p_u + drift r_u` with a fresh random `r_u` (drift 1 replaces them).
///
/// With an `attributeShare` s the items also get attributes (``catalogue``, ``SyntheticItems``)
/// and `q_i = d^-1/4 (√s a_i + √(1 − s) e_i)`: `a_i` the attribute part, unit variance per
/// dimension, and `e_i ~ N(0, I)` the item factors drawn as without attributes. Without it every
/// seed gives the same ratings it always has.
public struct SyntheticRatings: Sendable {
    /// What to generate.
    public struct Configuration: Sendable {
        public var users: Int
        public var items: Int
        public var ratings: Int
        public var dimension: Int
        public var noise: Double
        public var seed: UInt64
        public var zipfExponent: Double
        public var mean: Double
        /// How far users' tastes move (0: not at all, 1: replaced by new ones).
        public var drift: Double
        /// Where in the file (a share of the ratings) the tastes change.
        public var driftAt: Double
        /// The share of each item vector's variance its attributes explain, 0 to 1; nil: items
        /// have no attributes (and the item factors are those drawn before items had any).
        public var attributeShare: Double?

        public init(users: Int = 1000, items: Int = 500, ratings: Int = 50_000, dimension: Int = 10,
                    noise: Double = 0.5, seed: UInt64 = 1, zipfExponent: Double = 1.0, mean: Double = 3.5,
                    drift: Double = 0, driftAt: Double = 0.5, attributeShare: Double? = nil) {
            self.attributeShare = attributeShare
            self.drift = drift
            self.driftAt = driftAt
            self.users = users
            self.items = items
            self.ratings = ratings
            self.dimension = dimension
            self.noise = noise
            self.seed = seed
            self.zipfExponent = zipfExponent
            self.mean = mean
        }
    }

    /// A configuration that cannot be generated.
    public struct ConfigurationError: Error, CustomStringConvertible {
        public let description: String
    }

    public let configuration: Configuration
    /// True user factors, `users × dimension`.
    public let userFactors: [Double]
    /// True user factors after the drift point (equal to ``userFactors`` without drift).
    public let driftedUserFactors: [Double]
    /// True item factors, `items × dimension`.
    public let itemFactors: [Double]
    /// The items' attributes and their part of ``itemFactors``; nil without an
    /// ``Configuration/attributeShare``.
    public let catalogue: SyntheticItems?
    public let userBiases: [Double]
    public let itemBiases: [Double]

    /// Draws the true model. O((users + items) · d).
    /// - Throws: ``ConfigurationError`` for non-positive sizes, negative noise, a share outside
    ///   0...1, or more ratings than half of all (user, item) pairs.
    public init(_ c: Configuration) throws {
        guard c.users > 0, c.items > 0, c.ratings > 0, c.dimension > 0 else {
            throw ConfigurationError(description: "users, items, ratings and dimension must all be positive")
        }
        guard c.noise >= 0, c.noise.isFinite else { throw ConfigurationError(description: "noise must be a finite number ≥ 0") }
        guard (0...1).contains(c.drift), (0...1).contains(c.driftAt) else {
            throw ConfigurationError(description: "drift and drift-at must be between 0 and 1")
        }
        if let share = c.attributeShare, !(0...1).contains(share) {
            throw ConfigurationError(description: "attribute share must be between 0 and 1")
        }
        guard c.ratings <= c.users * c.items / 2 else {
            throw ConfigurationError(description: "\(c.ratings) ratings is more than half of the \(c.users) × \(c.items) (user, item) pairs; ask for fewer ratings or more users/items")
        }
        configuration = c
        var rng = SplitMix64(seed: c.seed)
        let scale = 1 / Double(c.dimension).squareRoot().squareRoot()
        userFactors = (0..<(c.users * c.dimension)).map { _ in rng.nextGaussian() * scale }
        let independent = (0..<(c.items * c.dimension)).map { _ in rng.nextGaussian() * scale }
        // The items' attributes come from a generator of their own, so the draws above and below
        // are the same with or without them.
        if let share = c.attributeShare {
            let items = SyntheticItems(count: c.items, dimension: c.dimension, seed: c.seed &+ 0xA77B)
            catalogue = items
            itemFactors = items.mix(independent: independent, share: share, scale: scale)
        } else {
            catalogue = nil
            itemFactors = independent
        }
        userBiases = (0..<c.users).map { _ in rng.nextGaussian() * 0.5 }
        itemBiases = (0..<c.items).map { _ in rng.nextGaussian() * 0.5 }
        var driftRNG = SplitMix64(seed: c.seed &+ 0xD81F7)
        let keep = (1 - c.drift * c.drift).squareRoot()
        driftedUserFactors = userFactors.map { $0 * keep + c.drift * driftRNG.nextGaussian() * scale }
    }

    /// The noiseless label of user row `u` for item row `i`, before or after the drift. O(d).
    public func trueLabel(user u: Int, item i: Int, drifted: Bool = false) -> Double {
        let d = configuration.dimension
        let p = drifted ? driftedUserFactors : userFactors
        var dot = 0.0
        for k in 0..<d { dot += p[u * d + k] * itemFactors[i * d + k] }
        return configuration.mean + userBiases[u] + itemBiases[i] + dot
    }

    /// The ratings, in time order (timestamps 1, 2, 3, …). Users are named `u0…`, items `i0…`.
    /// O(ratings · log items).
    public func ratings() -> [Rating] {
        let c = configuration
        var rng = SplitMix64(seed: c.seed &+ 0x5EED)
        var cdf = [Double](repeating: 0, count: c.items)
        var total = 0.0
        for k in 0..<c.items {
            total += 1 / Double.pow(Double(k + 1), c.zipfExponent)
            cdf[k] = total
        }
        let driftFrom = c.drift > 0 ? Int((Double(c.ratings) * c.driftAt).rounded()) : Int.max
        var seen = Set<Int>(minimumCapacity: c.ratings)
        var out: [Rating] = []
        out.reserveCapacity(c.ratings)
        while out.count < c.ratings {
            let u = Int(rng.next() % UInt64(c.users))
            let target = rng.nextUniform() * total
            var lo = 0, hi = c.items - 1
            while lo < hi {
                let mid = (lo + hi) / 2
                if cdf[mid] < target { lo = mid + 1 } else { hi = mid }
            }
            // Rejection keeps each pair unique; popular items fill up and the draw moves down the tail.
            guard seen.insert(u * c.items + lo).inserted else { continue }
            let label = trueLabel(user: u, item: lo, drifted: out.count >= driftFrom) + rng.nextGaussian() * c.noise
            out.append(Rating(uid: "u\(u)", item: "i\(lo)", label: Float(label), timestamp: Double(out.count + 1)))
        }
        return out
    }

    /// Writes ratings as CSV with the header `uid,item,label,timestamp`.
    public static func csv(_ ratings: [Rating]) -> String {
        var s = "uid,item,label,timestamp\n"
        s.reserveCapacity(ratings.count * 24)
        for r in ratings {
            s += "\(r.uid),\(r.item),\(r.label),\(Int(r.timestamp))\n"
        }
        return s
    }
}

import RealModule
