/// A small, fast, seedable random number generator (SplitMix64), so synthetic data and
/// initializations are reproducible per seed on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform double in [0, 1).
    public mutating func nextUniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        var u1 = nextUniform()
        while u1 <= .leastNormalMagnitude { u1 = nextUniform() }
        let u2 = nextUniform()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }
}

import RealModule

@inline(__always) private func _log(_ x: Double) -> Double { Double.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Double.cos(x) }
