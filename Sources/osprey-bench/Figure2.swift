import OspreyMath

/// Figure 2 of the Velox paper: latency of learning one observation online, Sherman–Morrison
/// (`RidgeState.update`, O(d²) plus an O(d³) refactor every `refactorInterval` updates) against
/// the naive re-solve (accumulate A and b, then `Cholesky.solve` per observation, O(d³)).
enum Figure2 {
    struct Result {
        var d: Int
        var amortized: Stats
        var shermanMorrison: Stats
        var refactor: Stats
        var naive: Stats
    }

    /// A pool of observations: feature vectors padded to `stride` (‖f‖ ≈ 1) and noisy targets of
    /// a fixed true weight vector.
    struct Pool {
        let d: Int
        let stride: Int
        let count: Int
        var features: [Float]
        var targets: [Float]

        init(d: Int, count: Int, seed: UInt64) {
            self.d = d
            stride = VectorKernels.paddedStride(d)
            self.count = count
            var rng = SplitMix64(seed: seed)
            let scale = 1 / Double(d).squareRoot()
            let truth = (0..<d).map { _ in rng.nextGaussian() }
            features = [Float](repeating: 0, count: count * stride)
            targets = [Float](repeating: 0, count: count)
            for i in 0..<count {
                var y = 0.0
                for k in 0..<d {
                    let x = rng.nextGaussian() * scale
                    features[i * stride + k] = Float(x)
                    y += x * truth[k]
                }
                targets[i] = Float(y + 0.1 * rng.nextGaussian())
            }
        }
    }

    static let poolSize = 2048  // a power of two

    static func run(d: Int, config: BenchConfig) -> Result {
        let pool = Pool(d: d, count: poolSize, seed: 0xF16_2000 + UInt64(d))
        let s = pool.stride
        let interval = RidgeState.refactorInterval
        let prior = [Float](repeating: 0, count: d)
        var refactorFailures = 0

        return pool.features.withUnsafeBufferPointer { fb in
            let fp = fb.baseAddress!
            let targets = pool.targets
            var cursor = 0

            // (a) amortized: batches of whole multiples of 2 × refactorInterval updates, starting
            // right after a refactor, so every batch holds the same share of refactors.
            var state = RidgeState(prior: prior, lambda: 1)
            let amortized = measure(config, innerMultiple: 2 * interval, minInner: 2 * interval) { n in
                var acc: Float = 0
                for _ in 0..<n {
                    let i = cursor & (poolSize - 1)
                    acc += state.update(features: fp + i * s, target: targets[i])
                    cursor &+= 1
                }
                consume(acc)
            }
            if state.updatesSinceRefactor != 0 { refactorFailures += 1 }

            // (a') Sherman–Morrison alone: batches of (interval − 1) updates from a fresh
            // refactor; the one update that triggers the next refactor runs untimed.
            var smState = RidgeState(prior: prior, lambda: 1)
            let sm = measure(
                config, fixedInner: interval - 1,
                prepare: {
                    // Run untimed up to and including the update that triggers the refactor.
                    var guardCount = 0
                    while smState.updatesSinceRefactor != 0 && guardCount <= interval {
                        let i = cursor & (poolSize - 1)
                        smState.update(features: fp + i * s, target: targets[i])
                        cursor &+= 1
                        guardCount += 1
                    }
                    if smState.updatesSinceRefactor != 0 { refactorFailures += 1 }
                }
            ) { n in
                var acc: Float = 0
                for _ in 0..<n {
                    let i = cursor & (poolSize - 1)
                    acc += smState.update(features: fp + i * s, target: targets[i])
                    cursor &+= 1
                }
                consume(acc)
            }

            // One refactor() (O(d³) in Double via Cholesky.inverse).
            var refState = state
            let refactor = measure(config) { n in
                for _ in 0..<n {
                    do { try refState.refactor() } catch { refactorFailures += 1 }
                }
                consume(refState.weights[0])
            }

            // (b) naive: A += f fᵀ, b += t f, then x = A⁻¹ b by Cholesky.solve, per observation.
            var a = [Double](repeating: 0, count: d * d)
            for k in 0..<d { a[k * d + k] = 1 }  // λ = 1
            var b = [Double](repeating: 0, count: d)
            var x = [Double](repeating: 0, count: d)
            let naive = measure(config) { n in
                var acc: Float = 0
                for _ in 0..<n {
                    let i = cursor & (poolSize - 1)
                    let f = fp + i * s
                    let t = Double(targets[i])
                    var prediction = 0.0
                    a.withUnsafeMutableBufferPointer { ap in
                        b.withUnsafeMutableBufferPointer { bp in
                            x.withUnsafeBufferPointer { xp in
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
                    do { x = try Cholesky.solve(a, n: d, b) } catch { refactorFailures += 1 }
                    cursor &+= 1
                }
                consume(acc + Float(x[0]))
            }
            if refactorFailures > 0 {
                progress("warning: d=\(d): \(refactorFailures) refactor/solve failures (not positive definite)")
            }
            return Result(d: d, amortized: amortized, shermanMorrison: sm, refactor: refactor, naive: naive)
        }
    }
}
