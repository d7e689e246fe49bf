import OspreyMath

/// Figure 2 of the Velox paper: latency of learning one observation online, Sherman–Morrison
/// (`RidgeState.update`, O(d²) plus an O(d³) refactor every `refactorInterval` updates) against
/// the naive re-solve (accumulate A and b, then `Cholesky.solve` per observation, O(d³)).
enum Figure2 {
    static let poolSize = 2048  // a power of two

    /// A pool of observations: feature vectors padded to `stride` (‖f‖ ≈ 1) and noisy targets of
    /// a fixed true weight vector. Stable pointers for the benchmark closures.
    final class Pool {
        let d: Int
        let stride: Int
        let features: UnsafeMutablePointer<Float>
        let targets: UnsafeMutablePointer<Float>
        /// The next observation to use (cycles through the pool).
        var cursor = 0
        /// Refactors or solves that threw (A not positive definite): reported, never expected.
        var failures = 0

        init(d: Int, seed: UInt64) {
            self.d = d
            stride = VectorKernels.paddedStride(d)
            features = .allocate(capacity: poolSize * stride)
            features.initialize(repeating: 0, count: poolSize * stride)
            targets = .allocate(capacity: poolSize)
            var rng = SplitMix64(seed: seed)
            let scale = 1 / Double(d).squareRoot()
            let truth = (0..<d).map { _ in rng.nextGaussian() }
            for i in 0..<poolSize {
                var y = 0.0
                for k in 0..<d {
                    let x = rng.nextGaussian() * scale
                    features[i * stride + k] = Float(x)
                    y += x * truth[k]
                }
                targets[i] = Float(y + 0.1 * rng.nextGaussian())
            }
        }

        deinit {
            features.deallocate()
            targets.deallocate()
        }

        /// Feeds the next `n` pool observations to `state`; returns the summed errors.
        @inline(__always)
        func feed(_ state: inout RidgeState, _ n: Int) -> Float {
            var acc: Float = 0
            let s = stride
            for _ in 0..<n {
                let i = cursor & (poolSize - 1)
                acc += state.update(features: features + i * s, target: targets[i])
                cursor &+= 1
            }
            return acc
        }
    }

    /// Mutable state a benchmark closure works on.
    final class Box<T> {
        var value: T
        init(_ value: T) { self.value = value }
    }

    /// The four benchmarks of one dimension.
    struct Case {
        let d: Int
        let pool: Pool
        /// Sherman–Morrison, amortized over whole refactor periods.
        let amortized: Benchmark
        /// Sherman–Morrison between refactors.
        let shermanMorrison: Benchmark
        /// One `refactor()`.
        let refactor: Benchmark
        /// Gram accumulation + `Cholesky.solve` per observation.
        let naive: Benchmark
        var all: [Benchmark] { [amortized, shermanMorrison, refactor, naive] }
    }

    static func make(d: Int) -> Case {
        let pool = Pool(d: d, seed: 0xF16_2000 + UInt64(d))
        let interval = RidgeState.refactorInterval
        let prior = [Float](repeating: 0, count: d)

        // (a) amortized: batches of whole multiples of 2 × refactorInterval updates, starting right
        // after a refactor, so every batch holds the same share of refactors.
        let amortizedState = Box(RidgeState(prior: prior, lambda: 1))
        let amortized = Benchmark(
            "figure 2 d=\(d) update (amortized)", innerMultiple: 2 * interval, minInner: 2 * interval,
            prepare: { if amortizedState.value.updatesSinceRefactor != 0 { pool.failures += 1 } }
        ) { n in
            consume(pool.feed(&amortizedState.value, n))
        }

        // (a') Sherman–Morrison alone: batches of (interval − 1) updates starting right after a
        // refactor; the update that triggers the next refactor runs untimed in `prepare`.
        let smState = Box(RidgeState(prior: prior, lambda: 1))
        let sm = Benchmark(
            "figure 2 d=\(d) update (no refactor)", fixedInner: interval - 1,
            prepare: {
                var guardCount = 0
                while smState.value.updatesSinceRefactor != 0 && guardCount <= interval {
                    consume(pool.feed(&smState.value, 1))
                    guardCount += 1
                }
                if smState.value.updatesSinceRefactor != 0 { pool.failures += 1 }
            }
        ) { n in
            consume(pool.feed(&smState.value, n))
        }

        // One refactor() (O(d³) in Double via Cholesky.inverse), on a state with some history.
        let refState = Box(RidgeState(prior: prior, lambda: 1))
        consume(pool.feed(&refState.value, 1500))
        let refactor = Benchmark("figure 2 d=\(d) refactor()") { n in
            for _ in 0..<n {
                do { try refState.value.refactor() } catch { pool.failures += 1 }
            }
            consume(refState.value.weights[0])
        }

        // (b) naive: A += f fᵀ and b += t f (Double), then x = A⁻¹ b by Cholesky.solve, per observation.
        var gram = [Double](repeating: 0, count: d * d)
        for k in 0..<d { gram[k * d + k] = 1 }  // λ = 1
        let a = Box(gram)
        let b = Box([Double](repeating: 0, count: d))
        let x = Box([Double](repeating: 0, count: d))
        let naive = Benchmark("figure 2 d=\(d) naive re-solve") { n in
            var acc: Float = 0
            let s = pool.stride
            for _ in 0..<n {
                let i = pool.cursor & (poolSize - 1)
                let f = pool.features + i * s
                let t = Double(pool.targets[i])
                var prediction = 0.0
                a.value.withUnsafeMutableBufferPointer { ap in
                    b.value.withUnsafeMutableBufferPointer { bp in
                        x.value.withUnsafeBufferPointer { xp in
                            for r in 0..<d {
                                let fr = Double(f[r])
                                prediction += xp[r] * fr
                                for c in 0..<d { ap[r * d + c] += fr * Double(f[c]) }
                                bp[r] += t * fr
                            }
                        }
                    }
                }
                acc += Float(t - prediction)
                do { x.value = try Cholesky.solve(a.value, n: d, b.value) } catch { pool.failures += 1 }
                pool.cursor &+= 1
            }
            consume(acc + Float(x.value[0]))
        }
        return Case(d: d, pool: pool, amortized: amortized, shermanMorrison: sm, refactor: refactor, naive: naive)
    }
}
