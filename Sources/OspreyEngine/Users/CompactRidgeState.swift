import OspreyMath

/// A ridge state held in memory at about half its size: packed (``PackedRidgeState``) whenever it
/// packs exactly, else as it is. A hot user's state (``UserWeightStore/Hot``) and an item's
/// online state (``ItemLearner/Item``) are held so.
enum CompactRidgeState: Sendable {
    case packed(PackedRidgeState)
    case full(RidgeState)
    /// Only while ``store(_:)`` holds the packed value, so its storage is not shared.
    case moved

    /// `state`, packed when it packs. O(d²).
    init(_ state: RidgeState) {
        self = PackedRidgeState(state).map(Self.packed) ?? .full(state)
    }

    /// The state, bit for bit. O(d²) when packed.
    var unpacked: RidgeState {
        switch self {
        case .packed(let p): p.unpacked()
        case .full(let r): r
        case .moved: preconditionFailure("a ridge state read while it is being stored")
        }
    }

    /// Whether the state is held packed. O(1).
    var isPacked: Bool {
        if case .packed = self { return true }
        return false
    }

    /// Calls `body` with `w` (its first ``RidgeState/dimension`` floats), read in place. O(1)
    /// plus `body`.
    func withWeights<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        switch self {
        case .packed(let p): try p.withWeights(body)
        case .full(let r): try r.weights.withUnsafeBufferPointer { try body($0.baseAddress!) }
        case .moved: preconditionFailure("a ridge state read while it is being stored")
        }
    }

    /// Keeps `state` instead: repacked into the existing packed arrays when it packs and they
    /// are not shared (no allocation), else as is. O(d²).
    mutating func store(_ state: RidgeState) {
        if case .packed(var p) = self {
            self = .moved
            if p.repack(state) {
                self = .packed(p)
                return
            }
        }
        self = Self(state)
    }
}
