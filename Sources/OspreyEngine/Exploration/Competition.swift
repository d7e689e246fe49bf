import Foundation
import OspreyMath
import OspreyStorage
import Synchronization

/// How a competition divides users between the serving version (champion) and the challenger.
///
/// - `split(p)`: a fixed share `p` of users, chosen by a stable hash of the uid.
/// - `thompson`: a bandit over the two versions' observed reward (Thompson sampling): each user
///   seen for the first time goes to the version whose mean reward, drawn from its posterior, is
///   higher — so traffic shifts to the better version as evidence accumulates, without a fixed
///   test period. The posterior of a version's mean reward is Gaussian, `N(m, s²/(n + 1))`, with
///   `m` the mean of its `n` rewards shrunk towards the pooled mean by one pseudo-observation
///   and `s²` the pooled variance of all rewards (1 before there are two).
///
/// Either way a user keeps their version for the whole competition (sticky): `split` by the
/// hash, `thompson` by remembering (and storing) the first allocation.
public enum TrafficAllocation: Sendable, Equatable, CustomStringConvertible {
    case split(Double)
    case thompson

    /// The API form: `split(0.1)` or `thompson`.
    public var description: String {
        switch self {
        case .split(let p): "split(\(p))"
        case .thompson: "thompson"
        }
    }

    /// Parses the API form (case-insensitive, spaces ignored).
    /// - Throws: ``OspreyError`` `invalidArgument` for anything else or a share outside (0, 1).
    public static func parse(_ text: String) throws -> TrafficAllocation {
        let t = text.lowercased().filter { !$0.isWhitespace }
        if t == "thompson" { return .thompson }
        if t.hasPrefix("split("), t.hasSuffix(")"), let p = Double(t.dropFirst(6).dropLast()), p > 0, p < 1 {
            return .split(p)
        }
        throw OspreyError(.invalidArgument, "unknown allocation '\(text)': use split(p) with 0 < p < 1 (the challenger's share of users) or thompson")
    }
}

/// A challenger version serving beside the champion (docs/architecture.md, "Competing versions"): its own ``ServingState``
/// (learning every observation, like the champion), the users allocated to it, and each
/// version's reward from feedback joined to its decisions.
public final class Competition: Sendable {
    /// Counts and reward of one version in the competition.
    public struct Arm: Sendable, Equatable {
        public var version: Int
        /// Users allocated to it (for `split`: those seen since this process started).
        public var users = 0
        /// Top-k decisions it made.
        public var decisions = 0
        /// Feedback joined to its decisions, and the sum and sum of squares of the labels.
        public var feedback = 0
        public var rewardSum = 0.0
        public var rewardSquares = 0.0

        public var meanReward: Double? { feedback > 0 ? rewardSum / Double(feedback) : nil }
    }

    public let challenger: ServingState
    public let allocation: TrafficAllocation
    /// When the competition started: it names the competition's stored user assignments.
    public let since: Double
    private let assignments = StripedLocks { [String: Int]() }
    private let arms = Mutex<[Int: Arm]>([:])
    private let rng: Mutex<SplitMix64>
    /// Stores a new allocation (Thompson only).
    private let persist: @Sendable (String, Int) -> Void
    /// Each version's counts and reward, and the challenger's share, as metrics.
    let metrics: CompetitionMetrics

    init(challenger: ServingState, allocation: TrafficAllocation, since: Double, assigned: [String: Int] = [:],
         seed: UInt64 = UInt64.random(in: 0...UInt64.max), metrics: CompetitionMetrics,
         persist: @escaping @Sendable (String, Int) -> Void) {
        self.challenger = challenger
        self.allocation = allocation
        self.since = since
        self.persist = persist
        self.metrics = metrics
        rng = Mutex(SplitMix64(seed: seed))
        var users: [Int: Int] = [:]
        for (uid, version) in assigned {
            assignments.withLock(uid) { $0[uid] = version }
            users[version, default: 0] += 1
        }
        arms.withLock { a in for (v, n) in users { a[v, default: Arm(version: v)].users = n } }
        for (v, n) in users { metrics.arm(v).users.set(n) }
    }

    /// The version user `uid` is served by, given the champion's number now: the user's
    /// allocation, or for a user not seen yet in this competition the hash's (split) or a fresh
    /// draw (Thompson), remembered. O(1).
    func version(for uid: String, champion: Int) -> Int {
        let rival = challenger.version.number
        if let v = assignments.withLock(uid, { $0[uid] }), v == champion || v == rival { return v }
        let drawn: Int
        switch allocation {
        case .split(let share): drawn = Self.unitHash(uid) < share ? rival : champion
        case .thompson: drawn = drawsChallenger(champion: champion) ? rival : champion
        }
        // A user allocated to a champion since replaced by a retrain is allocated again.
        let (version, fresh) = assignments.withLock(uid) { a -> (Int, Bool) in
            if let v = a[uid], v == champion || v == rival { return (v, false) }
            a[uid] = drawn
            return (drawn, true)
        }
        if fresh {
            let n = arms.withLock { a -> Int in
                a[version, default: Arm(version: version)].users += 1
                return a[version]!.users
            }
            metrics.arm(version).users.set(n)
            // A split needs no record: the hash gives the same answer after a restart.
            if case .thompson = allocation { persist(uid, version) }
        }
        return version
    }

    /// Forgets user `uid`'s allocation (a user's erasure): its next request is allocated afresh.
    /// The arms' counts keep it. O(1).
    func forget(_ uid: String) {
        _ = assignments.withLock(uid) { $0.removeValue(forKey: uid) }
    }

    /// A uniform number in [0, 1) from the uid's bytes (FNV-1a, then SplitMix64): the same in
    /// every process, unlike `hashValue`.
    static func unitHash(_ uid: String) -> Double {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in uid.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var mix = SplitMix64(seed: h ^ 0xC0FF_EE15_A11C_A7E5)
        return mix.nextUniform()
    }

    /// Counts a top-k decision made by `version`.
    func countDecision(version: Int) {
        arms.withLock { $0[version, default: Arm(version: version)].decisions += 1 }
        metrics.arm(version).decisions.increment()
    }

    /// Records the reward of feedback joined to a decision of `version`.
    func record(version: Int, reward: Double) {
        guard reward.isFinite else { return }
        let sum = arms.withLock { a -> Double in
            var arm = a[version, default: Arm(version: version)]
            arm.feedback += 1
            arm.rewardSum += reward
            arm.rewardSquares += reward * reward
            a[version] = arm
            return arm.rewardSum
        }
        let arm = metrics.arm(version)
        arm.feedback.increment()
        arm.reward.set(sum)
    }

    /// Records the challenger's share of new users given the champion's number now (at the
    /// start, and after feedback moves the posteriors).
    func recordShare(champion: Int) {
        metrics.share.set(challengerShare(champion: champion))
    }

    /// Each version's counts and reward, champion and challenger first, then any earlier
    /// champion (one replaced by a retrain during the competition).
    public func standings(champion: Int) -> [Arm] {
        let all = arms.withLock { $0 }
        let first = [champion, challenger.version.number].map { all[$0] ?? Arm(version: $0) }
        return first + all.values.filter { $0.version != champion && $0.version != challenger.version.number }
            .sorted { $0.version < $1.version }
    }

    /// The share of new users the challenger gets now: the split, or the probability that its
    /// posterior mean reward draw beats the champion's.
    public func challengerShare(champion: Int) -> Double {
        switch allocation {
        case .split(let p): return p
        case .thompson:
            let (c, h) = posteriors(champion: champion)
            let sd = (c.variance + h.variance).squareRoot()
            return 0.5 * erfc(-(h.mean - c.mean) / (sd * 2.0.squareRoot()))
        }
    }

    private func drawsChallenger(champion: Int) -> Bool {
        let (c, h) = posteriors(champion: champion)
        return rng.withLock { r in
            h.mean + h.variance.squareRoot() * r.nextGaussian() > c.mean + c.variance.squareRoot() * r.nextGaussian()
        }
    }

    /// The Gaussian posteriors of the champion's and the challenger's mean reward.
    private func posteriors(champion: Int) -> (champion: (mean: Double, variance: Double), challenger: (mean: Double, variance: Double)) {
        let all = arms.withLock { $0 }
        let n = all.values.reduce(0) { $0 + $1.feedback }
        let sum = all.values.reduce(0) { $0 + $1.rewardSum }, squares = all.values.reduce(0) { $0 + $1.rewardSquares }
        let pooledMean = n > 0 ? sum / Double(n) : 0
        let pooledVariance = n > 1 ? max((squares - Double(n) * pooledMean * pooledMean) / Double(n - 1), 1e-6) : 1
        func posterior(_ v: Int) -> (mean: Double, variance: Double) {
            let a = all[v] ?? Arm(version: v)
            let k = Double(a.feedback + 1)
            return ((a.rewardSum + pooledMean) / k, pooledVariance / k)
        }
        return (posterior(champion), posterior(challenger.version.number))
    }
}
