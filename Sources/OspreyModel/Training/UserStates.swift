import Dispatch
import OspreyMath

/// The starting ridge state of every user a version was trained on — `A = λI + Σ f fᵀ` and
/// `b = Σ t f` under the final item features, so online learning continues exactly where training
/// stopped — computed a chunk of users at a time. A state is d×d (about 20 KB at d = 50), so a
/// million users' states (about 20 GB) cannot be held at once: they are streamed to the store
/// (``forEachChunk(size:_:)``), and the bootstrap prior is averaged on the way (``PriorMean``).
public struct UserStates: Sendable {
    /// The users, in training order.
    public let uids: [String]
    let ratings: SparseRows
    let features: MaterializedFeatures
    let regularization: Regularization
    let threads: Int
    /// Weights given for some users (indexed like ``uids``; empty when none are): such a user's
    /// state keeps its Gram matrix `A` from its ratings but takes `b = A·w`, so that its weights
    /// are `w` exactly and online learning goes on from them (factors trained elsewhere).
    let given: [[Float]?]

    init(uids: [String], ratings: SparseRows, features: MaterializedFeatures, regularization: Regularization, threads: Int,
         given: [[Float]?] = []) {
        precondition(given.isEmpty || given.count == uids.count, "given weights are indexed like the users")
        self.uids = uids
        self.ratings = ratings
        self.features = features
        self.regularization = regularization
        self.threads = threads
        self.given = given
    }

    /// The number of users.
    public var count: Int { uids.count }

    /// Calls `body` with consecutive chunks of at most `size` users and their states, in training
    /// order; each chunk is computed on all threads. Only one chunk's states are held at a time.
    /// O(ratings · d² + users · d³) in all.
    /// - Throws: ``Trainer/ConfigurationError`` for a user whose system is singular; what `body` throws.
    public func forEachChunk(size: Int = 2048, _ body: ([(uid: String, state: RidgeState)]) throws -> Void) throws {
        precondition(size >= 1, "chunks hold at least one user")
        var start = 0
        while start < count {
            let end = min(count, start + size)
            try body(try states(start..<end))
            start = end
        }
    }

    /// Every user's state at once: for models small enough to hold them (tests, experiments).
    public func all() throws -> [(uid: String, state: RidgeState)] {
        var out: [(uid: String, state: RidgeState)] = []
        out.reserveCapacity(count)
        try forEachChunk { out += $0 }
        return out
    }

    /// The root mean squared error of every user's weights on its ratings (nil with no ratings),
    /// computed a chunk at a time. O(ratings · d² + users · d³).
    /// - Throws: as ``forEachChunk(size:_:)``.
    public func rmse() throws -> Double? {
        guard !ratings.labels.isEmpty else { return nil }
        var sum = 0.0, start = 0
        try forEachChunk { chunk in
            for (i, user) in chunk.enumerated() {
                let u = start + i
                for e in ratings.offsets[u]..<ratings.offsets[u + 1] {
                    let score = features.withFeatures(item: Int(ratings.columns[e])) { f, offset in
                        (0..<features.dimension).reduce(Double(offset)) { $0 + Double(user.state.weights[$1]) * Double(f[$1]) }
                    }
                    let error = score - Double(ratings.labels[e])
                    sum += error * error
                }
            }
            start += chunk.count
        }
        return (sum / Double(ratings.labels.count)).squareRoot()
    }

    /// The states of users `range`, computed on all threads. O(their ratings · d² + |range| · d³).
    private func states(_ range: Range<Int>) throws -> [(uid: String, state: RidgeState)] {
        let dim = features.dimension
        let results = UnsafeMutableBufferPointer<RidgeState?>.allocate(capacity: range.count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        nonisolated(unsafe) let out = results
        let workers = max(1, min(threads, range.count))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var a = [Double](repeating: 0, count: dim * dim)
            var b = [Double](repeating: 0, count: dim)
            var i = worker
            while i < range.count {
                defer { i += workers }
                let u = range.lowerBound + i
                // A user with given weights may have no ratings: a scaled penalty counts at least one.
                let penalty = Double(regularization.lambda) * (regularization.scaled ? Double(max(1, ratings.count(ofRow: u))) : 1)
                for k in 0..<a.count { a[k] = 0 }
                for k in 0..<dim { b[k] = 0; a[k * dim + k] = penalty }
                for e in ratings.offsets[u]..<ratings.offsets[u + 1] {
                    features.withFeatures(item: Int(ratings.columns[e])) { f, offset in
                        let t = Double(ratings.labels[e] - offset)
                        for i in 0..<dim {
                            let fi = Double(f[i])
                            b[i] += t * fi
                            for j in 0..<dim { a[i * dim + j] += fi * Double(f[j]) }
                        }
                    }
                }
                if !given.isEmpty, let w = given[u] {
                    for r in 0..<dim {
                        var sum = 0.0
                        for c in 0..<dim { sum += a[r * dim + c] * Double(w[c]) }
                        b[r] = sum
                    }
                }
                out[i] = try? RidgeState(gram: a, rhs: b)
            }
        }
        var chunk: [(uid: String, state: RidgeState)] = []
        chunk.reserveCapacity(range.count)
        for i in 0..<range.count {
            guard let s = results[i] else {
                throw Trainer.ConfigurationError(description: "user \(uids[range.lowerBound + i])'s ridge system is singular; use a larger --lambda")
            }
            chunk.append((uids[range.lowerBound + i], s))
        }
        return chunk
    }
}

/// The mean of users' weights, accumulated one user at a time: the bootstrap prior for new users
/// (Velox §5), summed in Double in the order the users are added.
public struct PriorMean: Sendable {
    private var sum: [Double]
    private var users = 0

    public init(dimension: Int) {
        sum = [Double](repeating: 0, count: dimension)
    }

    /// Adds one user's weights. O(d).
    public mutating func add(_ state: RidgeState) {
        for k in 0..<sum.count { sum[k] += Double(state.weights[k]) }
        users += 1
    }

    /// The mean so far (zeros before any user).
    public var mean: [Float] {
        guard users > 0 else { return [Float](repeating: 0, count: sum.count) }
        return sum.map { Float($0 / Double(users)) }
    }
}
