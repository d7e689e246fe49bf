import Numerics
import Testing
@testable import OspreyMath

/// Online Sherman–Morrison updates against a direct ridge solve in Double.
struct RidgeStateTests {
    /// Random features with the constant bias feature last, padded to the stride.
    func randomFeatures(_ d: Int, _ rng: inout SplitMix64) -> [Float] {
        var f = [Float](repeating: 0, count: VectorKernels.paddedStride(d))
        for k in 0..<(d - 1) { f[k] = Float(rng.nextGaussian()) }
        f[d - 1] = 1
        return f
    }

    func directSolve(prior: [Float], lambda: Float, observations: [([Float], Float)], d: Int) throws -> [Double] {
        var a = [Double](repeating: 0, count: d * d)
        var b = prior.map { Double(lambda) * Double($0) }
        for k in 0..<d { a[k * d + k] = Double(lambda) }
        for (f, t) in observations {
            for i in 0..<d {
                b[i] += Double(t) * Double(f[i])
                for j in 0..<d { a[i * d + j] += Double(f[i]) * Double(f[j]) }
            }
        }
        return try Cholesky.solve(a, n: d, b)
    }

    func relativeError(_ w: [Float], _ reference: [Double]) -> Double {
        var num = 0.0, den = 0.0
        for k in 0..<reference.count {
            num += (Double(w[k]) - reference[k]) * (Double(w[k]) - reference[k])
            den += reference[k] * reference[k]
        }
        return (num / den).squareRoot()
    }

    @Test(arguments: [11, 51])
    func tenThousandUpdatesMatchDirectSolve(d: Int) throws {
        var rng = SplitMix64(seed: 7)
        let prior = (0..<d).map { _ in Float(rng.nextGaussian()) }
        let trueW = (0..<d).map { _ in Float(rng.nextGaussian()) }
        var state = RidgeState(prior: prior, lambda: 2)
        var observations: [([Float], Float)] = []
        for n in 1...10_000 {
            let f = randomFeatures(d, &rng)
            var t: Float = Float(rng.nextGaussian()) * 0.3
            for k in 0..<d { t += trueW[k] * f[k] }
            f.withUnsafeBufferPointer { _ = state.update(features: $0.baseAddress!, target: t) }
            observations.append((f, t))
            if n == 10 || n == 999 || n == 10_000 {
                let reference = try directSolve(prior: prior, lambda: 2, observations: observations, d: d)
                #expect(relativeError(state.weights, reference) < 1e-3, "after \(n) updates")
            }
        }
    }

    @Test func firstUpdateEqualsClosedForm() throws {
        var rng = SplitMix64(seed: 3)
        let d = 6
        var state = RidgeState(prior: [Float](repeating: 0.5, count: d), lambda: 1)
        let f = randomFeatures(d, &rng)
        let before = f.withUnsafeBufferPointer { state.predict($0.baseAddress!) }
        let error = f.withUnsafeBufferPointer { state.update(features: $0.baseAddress!, target: 2) }
        #expect(error.isApproximatelyEqual(to: 2 - before, relativeTolerance: 1e-6))
        let reference = try directSolve(prior: [Float](repeating: 0.5, count: d), lambda: 1, observations: [(f, 2)], d: d)
        #expect(relativeError(state.weights, reference) < 1e-5)
    }

    @Test func newStateServesItsPrior() {
        let state = RidgeState(prior: [1, 2, 3], lambda: 4)
        #expect(Array(state.weights.prefix(3)) == [1, 2, 3])
        #expect(state.weights.count == 8)
    }

    @Test func serializationRoundTripsBitForBit() throws {
        var rng = SplitMix64(seed: 5)
        var state = RidgeState(prior: [0.1, 0.2, 0.3, 0.4, 1], lambda: 3)
        for _ in 0..<37 {
            let f = randomFeatures(5, &rng)
            f.withUnsafeBufferPointer { _ = state.update(features: $0.baseAddress!, target: Float(rng.nextGaussian())) }
        }
        let restored = try RidgeState(serialized: state.serialized())
        #expect(restored == state)
        #expect(throws: RidgeState.DecodingError.self) { try RidgeState(serialized: [1, 2, 3]) }
        #expect(throws: RidgeState.DecodingError.self) { try RidgeState(serialized: state.serialized().dropLast()) }
    }

    /// The packed upper part of A holds λI + Σ f fᵀ exactly as the full matrix would (Float32
    /// sums), at every dimension's packing.
    @Test(arguments: [1, 7, 8, 9, 16, 51, 64])
    func packedGramMatchesTheAccumulatedMatrix(_ d: Int) {
        var rng = SplitMix64(seed: UInt64(d))
        var state = RidgeState(prior: [Float](repeating: 0, count: d), lambda: 2)
        var a = [Float](repeating: 0, count: d * d)
        for k in 0..<d { a[k * d + k] = 2 }
        for _ in 0..<30 {
            var f = [Float](repeating: 0, count: VectorKernels.paddedStride(d))
            for k in 0..<d { f[k] = Float(rng.nextGaussian()) }
            f.withUnsafeBufferPointer { _ = state.update(features: $0.baseAddress!, target: 1) }
            for i in 0..<d { for j in 0..<d { a[i * d + j] += f[i] * f[j] } }
        }
        let g = state.gramMatrix()
        for i in 0..<d { for j in 0..<d { #expect(g[i * d + j].isApproximatelyEqual(to: Double(a[i * d + j]), relativeTolerance: 1e-5)) } }
        let s = VectorKernels.paddedStride(d)
        let rows = (0..<d).map { s - RidgeState.firstMaintained(row: $0) }
        #expect(RidgeState.gramOffset(row: d, stride: s) == rows.reduce(0, +))
        #expect((0...d).allSatisfy { RidgeState.gramOffset(row: $0, stride: s) % VectorKernels.lanes == 0 })
    }
}

/// The packed form the hot tier keeps: exact, and the update keeps A⁻¹ exactly symmetric.
struct PackedRidgeStateTests {
    @Test(arguments: [1, 5, 8, 9, 51])
    func packingRoundTripsBitForBitThroughUpdatesAndRefactors(d: Int) throws {
        var rng = SplitMix64(seed: UInt64(d))
        var state = RidgeState(prior: (0..<d).map { _ in Float(rng.nextGaussian()) }, lambda: 1.5)
        for n in 0..<(RidgeState.refactorInterval + 300) {
            var f = [Float](repeating: 0, count: state.stride)
            for k in 0..<d { f[k] = n % 3 == 0 && k % 2 == 0 ? 0 : Float(rng.nextGaussian()) }
            f.withUnsafeBufferPointer { _ = state.update(features: $0.baseAddress!, target: Float(rng.nextGaussian())) }
            if n % 97 == 0 || n == RidgeState.refactorInterval - 1 || n == RidgeState.refactorInterval {
                let packed = try #require(PackedRidgeState(state), "after \(n + 1) updates")
                #expect(packed.unpacked() == state)
                let unpackedBytes = (state.weights.count + state.inverse.count + state.gram.count) * 4 + state.rhs.count * 8
                #expect(packed.byteCount < unpackedBytes)
                if d == 51 { #expect(Double(packed.byteCount) < 0.6 * Double(unpackedBytes)) }
            }
        }
        let s = state.stride
        #expect((0..<d).allSatisfy { i in (0..<d).allSatisfy { j in state.inverse[i * s + j].bitPattern == state.inverse[j * s + i].bitPattern } })
    }

    @Test func anAsymmetricInverseDoesNotPack() throws {
        let state = RidgeState(prior: [0.1, 0.2, 0.3], lambda: 1)
        var bytes = state.serializedUnpacked()
        // Entry (0, 1) of A⁻¹: header 16 bytes, then w (3 floats), then row 0.
        let offset = 16 + 3 * 4 + 1 * 4
        withUnsafeBytes(of: Float(0.25).bitPattern.littleEndian) { for k in 0..<4 { bytes[offset + k] = $0[k] } }
        let skewed = try RidgeState(serialized: bytes)
        #expect(PackedRidgeState(skewed) == nil)
        #expect(try RidgeState(serialized: skewed.serialized()) == skewed, "a state that does not pack is stored as RDG2")
        #expect(try RidgeState(serialized: state.serializedUnpacked()) == state, "RDG2 is still read")
        #expect(state.serialized().count < state.serializedUnpacked().count)
        #expect(PackedRidgeState(state)?.unpacked() == state)
    }
}

extension PackedRidgeStateTests {
    @Test func repackingInPlaceEqualsPackingAfresh() throws {
        var rng = SplitMix64(seed: 11)
        var state = RidgeState(prior: [Float](repeating: 0.2, count: 13), lambda: 1)
        var packed = try #require(PackedRidgeState(state))
        for _ in 0..<50 {
            var f = [Float](repeating: 0, count: state.stride)
            for k in 0..<13 { f[k] = Float(rng.nextGaussian()) }
            f.withUnsafeBufferPointer { _ = state.update(features: $0.baseAddress!, target: Float(rng.nextGaussian())) }
            let repacked = packed.repack(state)
            #expect(repacked)
            #expect(packed == PackedRidgeState(state) && packed.unpacked() == state)
        }
    }
}
