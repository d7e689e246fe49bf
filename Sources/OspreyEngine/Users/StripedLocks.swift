import Synchronization

/// State sharded over a fixed number of locks by uid (docs/architecture.md, "Threads and locks"): work on one user locks one
/// stripe, so users on other stripes proceed concurrently.
final class StripedLocks<State: Sendable>: Sendable {
    /// The number of stripes; a power of two.
    static var stripeCount: Int { 64 }

    final class Stripe: Sendable {
        let state: Mutex<State>
        init(_ initial: State) { state = Mutex(initial) }
    }

    let stripes: [Stripe]

    init(_ make: () -> State) {
        stripes = (0..<Self.stripeCount).map { _ in Stripe(make()) }
    }

    /// The stripe holding `uid`: by its hash, which Swift seeds anew in every process. O(1).
    @inline(__always)
    static func stripe(of uid: String) -> Int { Int(UInt(bitPattern: uid.hashValue) & UInt(stripeCount - 1)) }

    /// Runs `body` on the stripe holding `uid`, under its lock. O(1) plus `body`.
    @inline(__always)
    func withLock<R>(_ uid: String, _ body: (inout State) throws -> R) rethrows -> R {
        try stripes[Self.stripe(of: uid)].state.withLock { state -> sending R in
            try body(&state)
        }
    }

    /// Runs `body` on the stripe for a number (an item row, say), under its lock. O(1) plus `body`.
    @inline(__always)
    func withLock<R>(number: Int, _ body: (inout State) throws -> R) rethrows -> R {
        // Multiplicative hashing spreads consecutive numbers over the stripes.
        let h = UInt(bitPattern: number &* -7_046_029_254_386_353_131) >> 58
        return try stripes[Int(h) & (Self.stripeCount - 1)].state.withLock { state -> sending R in
            try body(&state)
        }
    }

    /// Runs `body` on every stripe in turn, each under its lock. O(stripes) plus `body`.
    func forEach(_ body: (inout State) -> Void) {
        for s in stripes { s.state.withLock { body(&$0) } }
    }
}
