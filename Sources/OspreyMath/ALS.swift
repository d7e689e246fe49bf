import Dispatch

/// Explicit-feedback matrix factorization by alternating least squares, with a global mean and
/// user and item biases folded into the vectors so the result is a personalized linear model:
/// `prediction(u, i) = μ + b_i + [p_u; c_u] · [q_i; 1]`. Without biases
/// (``Configuration/biases`` false) it is plain `μ + p_u · q_i`, D = d.
///
/// Each half-iteration solves one ridge regression per row (per user given the item features,
/// then per item given the user features), spread over `threads` cores. With n ratings, d factors
/// (D = d + 1) and R = users + items rows, one iteration costs O(n·D² + R·D³).
public enum ALS {
    /// Training settings.
    public struct Configuration: Sendable {
        /// Latent factors d (the vectors have d + 1 entries with the bias).
        public var dimension: Int
        /// Fit user and item bias terms (folded into the vectors); false fits `μ + p_u · q_i`.
        public var biases: Bool
        /// Ridge penalty λ on every weight, biases included.
        public var lambda: Float
        /// Scale each row's penalty by its number of ratings (λ·n, as ALS-WR does), so heavy
        /// users and popular items are not under-regularized relative to rare ones.
        public var scaleLambdaByCount: Bool
        /// Full iterations (user step, then item step).
        public var iterations: Int
        /// Seed of the item-factor initialization.
        public var seed: UInt64
        /// Worker threads for the per-row solves.
        public var threads: Int

        public init(dimension: Int = 20, lambda: Float = 5, scaleLambdaByCount: Bool = false, iterations: Int = 10,
                    seed: UInt64 = 1, threads: Int = 2, biases: Bool = true) {
            self.dimension = dimension
            self.biases = biases
            self.lambda = lambda
            self.scaleLambdaByCount = scaleLambdaByCount
            self.iterations = iterations
            self.seed = seed
            self.threads = threads
        }
    }

    /// Progress of a training run, reported after each iteration.
    public struct Progress: Sendable {
        public var iteration: Int
        public var iterations: Int
        public var trainingRMSE: Double
        public var seconds: Double
    }

    /// The fitted model. Rows are padded to ``stride``.
    public struct Factors: Sendable {
        public let dimension: Int
        public let stride: Int
        public let mean: Float
        /// `[p_u; c_u]` per user: the user weights (`p_u` without biases).
        public var userWeights: [Float]
        /// `[q_i; 1]` per item: the materialized feature table θ (`q_i` without biases).
        public var itemFeatures: [Float]
        /// `b_i` per item (the item bias; the label offset is `mean + b_i`; zero without biases).
        public var itemBiases: [Float]
        public let userCount: Int
        public let itemCount: Int

        /// The prediction for user row `u` and item row `i`. O(d).
        public func predict(user u: Int, item i: Int) -> Float {
            userWeights.withUnsafeBufferPointer { w in
                itemFeatures.withUnsafeBufferPointer { f in
                    mean + itemBiases[i] + VectorKernels.dot(w.baseAddress! + u * stride, f.baseAddress! + i * stride, count: stride)
                }
            }
        }

        /// Root mean squared error over the given ratings. O(n·d).
        public func rmse(users: [Int32], items: [Int32], labels: [Float]) -> Double {
            guard !labels.isEmpty else { return .nan }
            var sum = 0.0
            for k in 0..<labels.count {
                let e = Double(labels[k] - predict(user: Int(users[k]), item: Int(items[k])))
                sum += e * e
            }
            return (sum / Double(labels.count)).squareRoot()
        }
    }

    /// Fits the factors to ratings given as parallel arrays of user rows, item rows and labels.
    /// - Parameters:
    ///   - shouldStop: asked before each iteration; true ends the fit early (the factors so far
    ///     are returned; a caller that asked to stop discards them).
    ///   - progress: called after each iteration with the training RMSE.
    public static func train(
        userCount: Int, itemCount: Int,
        users: [Int32], items: [Int32], labels: [Float],
        configuration c: Configuration,
        shouldStop: () -> Bool = { false },
        progress: (Progress) -> Void = { _ in }
    ) -> Factors {
        let clock = ContinuousClock()
        let start = clock.now
        let d = c.dimension, dim = c.biases ? d + 1 : d
        let s = VectorKernels.paddedStride(dim)
        let mean = labels.isEmpty ? 0 : Float(labels.reduce(0.0) { $0 + Double($1) } / Double(labels.count))
        let byUser = SparseRows(rowCount: userCount, rows: users, columns: items, labels: labels)
        let byItem = SparseRows(rowCount: itemCount, rows: items, columns: users, labels: labels)

        var rng = SplitMix64(seed: c.seed)
        // Item side starts random (small), with the constant-1 bias feature; offsets μ + b_i = μ.
        var itemFeatures = [Float](repeating: 0, count: itemCount * s)
        for i in 0..<itemCount {
            for k in 0..<d { itemFeatures[i * s + k] = Float(rng.nextGaussian()) * 0.1 }
            if c.biases { itemFeatures[i * s + d] = 1 }
        }
        var itemOffsets = [Float](repeating: mean, count: itemCount)
        var userFeatures = [Float](repeating: 0, count: userCount * s)
        var userOffsets = [Float](repeating: mean, count: userCount)
        var userWeights = [Float](repeating: 0, count: userCount * s)
        var itemSolution = [Float](repeating: 0, count: itemCount * s)

        for iteration in 1...max(1, c.iterations) {
            if shouldStop() { break }
            // User step: [p_u; c_u] given features [q_i; 1] and offsets μ + b_i.
            solveRows(byUser, features: itemFeatures, offsets: itemOffsets, stride: s, dimension: dim,
                      lambda: c.lambda, scaled: c.scaleLambdaByCount, threads: c.threads, into: &userWeights)
            for u in 0..<userCount {
                for k in 0..<d { userFeatures[u * s + k] = userWeights[u * s + k] }
                if c.biases { userFeatures[u * s + d] = 1 }
                userOffsets[u] = mean + (c.biases ? userWeights[u * s + d] : 0)
            }
            // Item step: [q_i; b_i] given features [p_u; 1] and offsets μ + c_u.
            solveRows(byItem, features: userFeatures, offsets: userOffsets, stride: s, dimension: dim,
                      lambda: c.lambda, scaled: c.scaleLambdaByCount, threads: c.threads, into: &itemSolution)
            for i in 0..<itemCount {
                for k in 0..<d { itemFeatures[i * s + k] = itemSolution[i * s + k] }
                if c.biases { itemFeatures[i * s + d] = 1 }
                itemOffsets[i] = mean + (c.biases ? itemSolution[i * s + d] : 0)
            }
            if iteration == c.iterations || c.iterations <= 1 {
                // End on a user step so W is exactly the ridge solution for the final θ: online
                // learning then continues from the very statistics training ended with.
                solveRows(byUser, features: itemFeatures, offsets: itemOffsets, stride: s, dimension: dim,
                          lambda: c.lambda, scaled: c.scaleLambdaByCount, threads: c.threads, into: &userWeights)
            }
            let snapshot = Factors(
                dimension: dim, stride: s, mean: mean, userWeights: userWeights, itemFeatures: itemFeatures,
                itemBiases: itemOffsets.map { $0 - mean }, userCount: userCount, itemCount: itemCount)
            progress(Progress(
                iteration: iteration, iterations: c.iterations,
                trainingRMSE: snapshot.rmse(users: users, items: items, labels: labels),
                seconds: (clock.now - start).seconds))
        }
        return Factors(
            dimension: dim, stride: s, mean: mean, userWeights: userWeights, itemFeatures: itemFeatures,
            itemBiases: itemOffsets.map { $0 - mean }, userCount: userCount, itemCount: itemCount)
    }

    /// For each row r: `x_r = (λ_r I + Σ f_j f_jᵀ)⁻¹ Σ f_j (y_rj − offset_j)` over its entries j,
    /// with `λ_r = λ` or, when `scaled`, `λ·n_r`.
    /// Rows without entries get zero. O(n·D² + rows·D³), split over `threads`.
    static func solveRows(
        _ rows: SparseRows, features: [Float], offsets: [Float], stride s: Int, dimension dim: Int,
        lambda: Float, scaled: Bool, threads: Int, into out: inout [Float]
    ) {
        let workers = max(1, min(threads, rows.rowCount))
        out.withUnsafeMutableBufferPointer { outBuffer in
            nonisolated(unsafe) let output = outBuffer
            features.withUnsafeBufferPointer { featureBuffer in
                nonisolated(unsafe) let fp = featureBuffer.baseAddress!
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    var gram = [Float](repeating: 0, count: dim * s)
                    var a = [Double](repeating: 0, count: dim * dim)
                    var b = [Double](repeating: 0, count: dim)
                    var r = worker
                    while r < rows.rowCount {
                        defer { r += workers }
                        let range = rows.offsets[r]..<rows.offsets[r + 1]
                        let row = output.baseAddress! + r * s
                        if range.isEmpty {
                            for k in 0..<s { row[k] = 0 }
                            continue
                        }
                        for k in 0..<gram.count { gram[k] = 0 }
                        for k in 0..<dim { b[k] = 0 }
                        gram.withUnsafeMutableBufferPointer { g in
                            let gp = g.baseAddress!
                            for e in range {
                                let j = Int(rows.columns[e])
                                let f = fp + j * s
                                let t = Double(rows.labels[e] - offsets[j])
                                for k in 0..<dim {
                                    let fk = f[k]
                                    if fk != 0 { VectorKernels.axpy(fk, f, gp + k * s, count: s) }
                                    b[k] += t * Double(fk)
                                }
                            }
                        }
                        let penalty = Double(lambda) * (scaled ? Double(range.count) : 1)
                        for i in 0..<dim {
                            for j in 0..<dim { a[i * dim + j] = Double(gram[i * s + j]) }
                            a[i * dim + i] += penalty
                        }
                        // λ > 0 makes the system positive definite; should rounding say otherwise, keep zeros.
                        let x = (try? Cholesky.solve(a, n: dim, b)) ?? [Double](repeating: 0, count: dim)
                        for k in 0..<dim { row[k] = Float(x[k]) }
                        for k in dim..<s { row[k] = 0 }
                    }
                }
            }
        }
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) * 1e-18
    }
}
