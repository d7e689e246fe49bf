import OspreyMath
import OspreyModel
import RealModule

/// A synthetic world for contextual bandits (docs/operations.md, "The simulator and
/// evaluate-policy"): users with true latent tastes, a
/// catalogue of items with latent vectors, and rewards = true rating + noise.
///
/// The true rating is the model Osprey fits: `r(u, i) = μ + b_i + [q_i; 1] · [p_u; b_u]` with
/// `p_u, q_i ~ N(0, d^-1/2 I)` (so `p_u · q_i` has unit variance) and biases `~ N(0, 0.5²)`, as in
/// ``SyntheticRatings``. The learner sees the true item vectors with the bias feature,
/// `f(i) = [q_i; 1]`, and the offsets `μ + b_i` (a version whose θ is exact), and must learn each
/// user's `[p_u; b_u]` online from its own choices: that is where the feedback loop lives —
/// a user's weights only learn along the items the policy showed them.
///
/// Each round one user arrives (uniformly, or Zipf-distributed with exponent `userZipf` > 0),
/// `candidates` distinct items are drawn uniformly from the catalogue, and the reward of whatever
/// is shown is its true rating plus this round's noise `ε ~ N(0, σ²)` (the same ε whichever item
/// is shown, so policies are compared on common random numbers).
///
/// Generation: one ``SplitMix64`` stream seeded with `seed` draws, in order, all `p_u` (user by
/// user, d values each), all `q_i` (the `z` of clustered items), then with clusters the K genre
/// centres, then all `b_u`, all `b_i`; a second stream seeded with
/// `seed ^ 0x5EED_0FB4_0D17_0001` draws the rounds (user, then candidates by rejection of repeats,
/// then ε), and with user pools a third stream seeded with `seed ^ 0x9001_0000_0000_0002` draws
/// each user's pool (user by user, by rejection of repeats). `bench/baselines/vw_bandit.py` reads the world exported by `osprey simulate
/// --export-world` rather than re-implementing this.
public struct BanditWorld: Sendable {
    /// The shape of a world.
    public struct Configuration: Sendable, Codable, Equatable {
        /// Number of users.
        public var users: Int
        /// Number of items in the catalogue.
        public var items: Int
        /// Items offered per round (N).
        public var candidates: Int
        /// Latent dimension d (features have d + 1 entries with the bias).
        public var dimension: Int
        /// Standard deviation σ of the reward noise.
        public var noise: Double
        /// Seed of the world and of its rounds (``BanditWorld`` lists the order of the draws).
        public var seed: UInt64
        /// Zipf exponent of user arrivals; 0 for uniform.
        public var userZipf: Double
        /// The global mean rating μ.
        public var mean: Double
        /// Item genres: with K > 0 each item vector is `√(1 − s²)·c_g + s·z` around one of K
        /// genre centres `c_g` (item i in genre i mod K), so the catalogue has the clustered shape
        /// of real item factors; 0 draws every item vector independently.
        public var clusters: Int
        /// The spread s of items around their genre centre (0…1).
        public var clusterSpread: Double
        /// Items each user's candidates come from: P > 0 gives every user a fixed pool of P
        /// items (what a retrieval stage returns for them, visit after visit) from which each
        /// round's N candidates are drawn; 0 draws candidates from the whole catalogue.
        public var userPool: Int

        /// A configuration; the defaults are a uniform, unclustered world of 500 users and 2000
        /// items. O(1); ``BanditWorld/init(_:)`` checks it.
        public init(users: Int = 500, items: Int = 2000, candidates: Int = 20, dimension: Int = 10, noise: Double = 1.0,
                    seed: UInt64 = 1, userZipf: Double = 0, mean: Double = 3.5, clusters: Int = 0, clusterSpread: Double = 0.3, userPool: Int = 0) {
            self.userPool = userPool
            self.clusters = clusters
            self.clusterSpread = clusterSpread
            self.users = users
            self.items = items
            self.candidates = candidates
            self.dimension = dimension
            self.noise = noise
            self.seed = seed
            self.userZipf = userZipf
            self.mean = mean
        }
    }

    /// A world that cannot be made.
    public struct ConfigurationError: Error, CustomStringConvertible {
        /// What is wrong with the configuration.
        public let description: String
    }

    /// One round: who arrives, what can be shown, and the noise on its reward.
    public struct Round: Sendable, Equatable {
        /// The arriving user (0 ..< users).
        public var user: Int
        /// Catalogue rows, distinct.
        public var candidates: [Int]
        /// The noise ε added to the shown item's expected reward.
        public var noise: Double
    }

    /// The configuration the world was drawn from.
    public let configuration: Configuration
    /// The learner's feature function: rows `[q_i; 1]` (dimension d + 1), offsets `μ + b_i`,
    /// ids `i0`, `i1`, ….
    public let features: MaterializedFeatures
    /// The true weights `[p_u; b_u]` per user, each padded to `features.stride`.
    public let trueWeights: [[Float]]

    /// Draws the world. O((users + items) · d).
    /// - Throws: ``ConfigurationError`` for non-positive sizes, more candidates than items, or
    ///   a negative noise or Zipf exponent.
    public init(_ c: Configuration) throws {
        guard c.users > 0, c.items > 0, c.dimension > 0, c.candidates > 0 else {
            throw ConfigurationError(description: "users, items, candidates and dimension must all be positive")
        }
        guard c.userPool >= 0, c.userPool <= c.items, c.userPool == 0 || c.candidates <= c.userPool else {
            throw ConfigurationError(description: "the user pool must be between the candidates per round and the items (or 0)")
        }
        guard c.candidates <= c.items else {
            throw ConfigurationError(description: "\(c.candidates) candidates per round is more than the \(c.items) items")
        }
        guard c.clusters >= 0, (0...1).contains(c.clusterSpread) else {
            throw ConfigurationError(description: "clusters must be ≥ 0 and the cluster spread between 0 and 1")
        }
        guard c.noise >= 0, c.noise.isFinite, c.userZipf >= 0, c.userZipf.isFinite else {
            throw ConfigurationError(description: "noise and the user Zipf exponent must be finite numbers ≥ 0")
        }
        configuration = c
        let d = c.dimension, fd = d + 1, s = VectorKernels.paddedStride(fd)
        var rng = SplitMix64(seed: c.seed)
        let scale = 1 / Double(d).squareRoot().squareRoot()
        let p = (0..<(c.users * d)).map { _ in rng.nextGaussian() * scale }
        var q = (0..<(c.items * d)).map { _ in rng.nextGaussian() * scale }
        if c.clusters > 0 {
            let centres = (0..<(c.clusters * d)).map { _ in rng.nextGaussian() * scale }
            let keep = (1 - c.clusterSpread * c.clusterSpread).squareRoot()
            for i in 0..<c.items {
                let g = i % c.clusters
                for j in 0..<d { q[i * d + j] = keep * centres[g * d + j] + c.clusterSpread * q[i * d + j] }
            }
        }
        let bu = (0..<c.users).map { _ in rng.nextGaussian() * 0.5 }
        let bi = (0..<c.items).map { _ in rng.nextGaussian() * 0.5 }
        var table = [Float](repeating: 0, count: c.items * s)
        for i in 0..<c.items {
            for j in 0..<d { table[i * s + j] = Float(q[i * d + j]) }
            table[i * s + d] = 1
        }
        features = MaterializedFeatures(
            dimension: fd, ids: (0..<c.items).map { "i\($0)" }, table: table,
            offsets: bi.map { Float(c.mean + $0) })
        trueWeights = (0..<c.users).map { u in
            var w = [Float](repeating: 0, count: s)
            for j in 0..<d { w[j] = Float(p[u * d + j]) }
            w[d] = Float(bu[u])
            return w
        }
    }

    /// The expected reward (true rating, no noise) of showing item row `item` to user `user`. O(d).
    public func expectedReward(user: Int, item: Int) -> Double {
        Double(trueWeights[user].withUnsafeBufferPointer { features.score(weights: $0.baseAddress!, item: item) })
    }

    /// The first `count` rounds, the same for every call. O(count · N).
    public func rounds(_ count: Int) -> [Round] {
        let c = configuration
        var rng = SplitMix64(seed: c.seed ^ 0x5EED_0FB4_0D17_0001)
        var cdf: [Double] = []
        if c.userZipf > 0 {
            var total = 0.0
            cdf = (0..<c.users).map { k in
                total += 1 / Double.pow(Double(k + 1), c.userZipf)
                return total
            }
            cdf = cdf.map { $0 / total }
        }
        var pools: [[Int]] = []
        var taken = Set<Int>()
        if c.userPool > 0 {
            var poolRNG = SplitMix64(seed: c.seed ^ 0x9001_0000_0000_0002)
            pools = (0..<c.users).map { _ in
                taken.removeAll(keepingCapacity: true)
                var pool: [Int] = []
                while pool.count < c.userPool {
                    let i = Int(poolRNG.next() % UInt64(c.items))
                    if taken.insert(i).inserted { pool.append(i) }
                }
                return pool
            }
        }
        var out: [Round] = []
        out.reserveCapacity(count)
        for _ in 0..<count {
            let user: Int
            if cdf.isEmpty {
                user = Int(rng.next() % UInt64(c.users))
            } else {
                let x = rng.nextUniform()
                var lo = 0, hi = c.users - 1
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if cdf[mid] < x { lo = mid + 1 } else { hi = mid }
                }
                user = lo
            }
            taken.removeAll(keepingCapacity: true)
            var candidates: [Int] = []
            candidates.reserveCapacity(c.candidates)
            while candidates.count < c.candidates {
                let i = pools.isEmpty ? Int(rng.next() % UInt64(c.items)) : pools[user][Int(rng.next() % UInt64(c.userPool))]
                if taken.insert(i).inserted { candidates.append(i) }
            }
            out.append(Round(user: user, candidates: candidates, noise: rng.nextGaussian() * c.noise))
        }
        return out
    }
}
