import Foundation
import OspreyStorage
import Synchronization

/// This process as one node of a cluster (Velox §6; docs/operations.md, "Partitioned serving"):
/// several nodes share one store, and each serves the users that the ``PartitionRing`` over the
/// live members gives it. Membership is the ``MembershipStore``'s: every node beats every
/// ``Configuration/heartbeatInterval``, and a member whose last heartbeat is older than
/// ``Configuration/memberTimeout`` (by the store's clock) is out of the ring.
///
/// Two rules keep a user learned by one node at a time, so every acknowledged observation is
/// learned by its user's owner:
/// - **A gained bucket waits.** A bucket this node gains is served only
///   ``Configuration/handoverDelay`` after the heartbeat that gained it, by which time the
///   bucket's previous owner has either seen the change (its next heartbeat) and stopped, or
///   fenced itself.
/// - **A node that cannot beat fences itself.** When its last successful heartbeat began more
///   than ``Configuration/handoverDelay`` ago, it answers every user `unavailable`: a node cut
///   off from the store stops before the others (who wait ``Configuration/memberTimeout``, more
///   than the delay) take its users.
///
/// The node holds no user it does not own: users of buckets it loses are dropped
/// (``Manager`` does, on each change), and a user it gains is adopted from the stores when first
/// asked for (its snapshot row, then its log after the row: see ``UserWeightStore/adopt(_:_:)``).
public final class ClusterNode: Sendable {
    /// A node's settings.
    public struct Configuration: Sendable {
        /// This node's name and the address clients reach it at.
        public var member: ClusterMember
        /// How often the node beats and refreshes its view of the members.
        public var heartbeatInterval: Duration
        /// A member silent this long is out of the ring.
        public var memberTimeout: Duration
        /// The ring's bucket count; every node and the router must use the same.
        public var buckets: Int
        /// With item updates, how often the node publishes what it learned of items and folds
        /// in the other nodes' publications (``ItemExchange``).
        public var itemExchangeInterval: Duration

        /// - Precondition: `memberTimeout` is more than ``handoverDelay``, three intervals.
        public init(member: ClusterMember, heartbeatInterval: Duration = .seconds(1), memberTimeout: Duration = .seconds(5),
                    buckets: Int = PartitionRing.defaultBuckets, itemExchangeInterval: Duration = .seconds(5)) {
            precondition(heartbeatInterval > .zero && memberTimeout > heartbeatInterval * 3,
                         "the member timeout must be more than three heartbeat intervals")
            self.member = member
            self.heartbeatInterval = heartbeatInterval
            self.memberTimeout = memberTimeout
            self.buckets = buckets
            self.itemExchangeInterval = itemExchangeInterval
        }

        /// How long a gained bucket waits, and how old a view may be before the node fences
        /// itself: three heartbeat intervals, so one heartbeat late by up to two intervals (a
        /// slow store, a busy machine) does not fence the node.
        public var handoverDelay: Duration { heartbeatInterval * 3 }
    }

    /// Where a user is served.
    public enum Route: Sendable, Equatable {
        /// Here.
        case local
        /// By another live member.
        case remote(ClusterMember)
        /// Nowhere right now (joining, a bucket waiting for its handover, or fenced): retry.
        case unavailable(String)
    }

    /// What a heartbeat changed.
    public struct Change: Sendable, Equatable {
        /// The members now live, by name.
        public var members: [ClusterMember]
        /// Buckets this node served before the heartbeat and does not now.
        public var lost: Set<Int>
        /// Buckets this node gained (served once their handover delay has passed).
        public var gained: Set<Int>
    }

    public let configuration: Configuration
    private let store: any MembershipStore
    /// Where the nodes exchange what they learn of items (nil: the node cannot serve with item
    /// updates).
    public let contributions: (any ItemContributionStore)?
    private let ring: PartitionRing

    private struct View {
        var members: [String: ClusterMember] = [:]
        /// Each bucket's owner by name ("" before the first heartbeat).
        var owners: [String]
        /// Gained buckets not served before the instant given.
        var waiting: [Int: Duration] = [:]
        /// Buckets this node owns but has not yet claimed in the log (``ObservationLog/claimBuckets(_:node:)``):
        /// not served until it has.
        var unclaimed: Set<Int> = []
        /// When the last successful heartbeat began.
        var beganAt: Duration?
    }

    private let view: Mutex<View>
    /// The time on a monotonic clock.
    private let now: @Sendable () -> Duration

    /// A node that is not a member yet: every user is `unavailable` until its first ``beat()``.
    /// - Parameters:
    ///   - contributions: where nodes exchange what they learn of items, needed to serve with
    ///     item updates.
    ///   - now: the time on a monotonic clock (default: the process's `ContinuousClock`); tests
    ///     pass a clock they move by hand.
    public init(configuration: Configuration, store: any MembershipStore, contributions: (any ItemContributionStore)? = nil,
                now: (@Sendable () -> Duration)? = nil) {
        self.configuration = configuration
        self.store = store
        self.contributions = contributions
        if let now {
            self.now = now
        } else {
            let clock = ContinuousClock(), start = clock.now
            self.now = { clock.now - start }
        }
        ring = PartitionRing(nodes: [configuration.member.name], buckets: configuration.buckets)
        view = Mutex(View(owners: Array(repeating: "", count: configuration.buckets)))
    }

    /// This node's name.
    public var name: String { configuration.member.name }

    /// The bucket of `uid` (``PartitionRing/bucket(uid:)``). O(length).
    public func bucket(of uid: String) -> Int { ring.bucket(uid: uid) }

    /// Beats once and takes the members it returns as the ring. Returns what changed.
    /// - Throws: the store's error; the view stays as it was (and ages toward fencing).
    @discardableResult
    public func beat() throws -> Change {
        let began = now()
        let members = try store.heartbeat(configuration.member, timeout: configuration.memberTimeout)
        let live = PartitionRing(nodes: members.map(\.name), buckets: configuration.buckets)
        let owners = (0..<configuration.buckets).map { live.ranking(bucket: $0).first! }
        let me = name
        return view.withLock { v in
            var change = Change(members: members, lost: [], gained: [])
            for b in 0..<owners.count where (v.owners[b] == me) != (owners[b] == me) {
                if owners[b] == me {
                    change.gained.insert(b)
                    v.waiting[b] = began + configuration.handoverDelay
                    v.unclaimed.insert(b)
                } else {
                    change.lost.insert(b)
                    v.waiting[b] = nil
                    v.unclaimed.remove(b)
                }
            }
            v.members = Dictionary(uniqueKeysWithValues: members.map { ($0.name, $0) })
            v.owners = owners
            v.beganAt = began
            return change
        }
    }

    /// Leaves the membership (a graceful stop): the others take this node's users at their next
    /// heartbeat plus their handover delay, without waiting for the member timeout.
    public func leave() throws {
        view.withLock { $0.beganAt = nil }
        try store.leave(name)
    }

    /// Tells every node that `model`'s serving version or exploration policy changed
    /// (``MembershipStore/announceChange(model:)``).
    public func announceChange(model: String) throws {
        try store.announceChange(model: model)
    }

    /// Claims the retrain of `model` for this node (``MembershipStore/claimRetrain(model:node:timeout:)``):
    /// nil when granted, else the node that holds it.
    public func claimRetrain(model: String) throws -> String? {
        try store.claimRetrain(model: model, node: name, timeout: configuration.memberTimeout)
    }

    /// Gives up this node's claim on the retrain of `model`.
    public func releaseRetrain(model: String) throws {
        try store.releaseRetrain(model: model, node: name)
    }

    /// Calls `handler` with the model of each announcement (``MembershipStore/onAnnouncement(_:)``).
    public func onAnnouncement(_ handler: @escaping @Sendable (String) -> Void) throws {
        try store.onAnnouncement(handler)
    }

    /// The buckets this node owns and has not yet claimed in the log.
    public var unclaimedBuckets: Set<Int> { view.withLock { $0.unclaimed } }

    /// Records `buckets` as claimed in the log: served once their handover delay has passed.
    public func claimed(_ buckets: some Sequence<Int>) {
        view.withLock { $0.unclaimed.subtract(buckets) }
    }

    /// Where `uid` is served now. O(length of uid).
    public func route(_ uid: String) -> Route {
        route(bucket: bucket(of: uid))
    }

    /// Where the users of bucket `b` are served now. O(1).
    public func route(bucket b: Int) -> Route {
        let now = now()
        return view.withLock { v in
            guard let began = v.beganAt else { return .unavailable("node \(name) is not a member of the cluster yet (or has left)") }
            guard now - began < configuration.handoverDelay else {
                return .unavailable("node \(name) has not reached the membership store for \(now - began); it serves no user until it does")
            }
            let owner = v.owners[b]
            guard owner == name else { return v.members[owner].map(Route.remote) ?? .unavailable("no live node owns bucket \(b)") }
            if let from = v.waiting[b] {
                guard now >= from else { return .unavailable("node \(name) takes over bucket \(b) in \(from - now)") }
                v.waiting[b] = nil
            }
            guard !v.unclaimed.contains(b) else { return .unavailable("node \(name) has not claimed bucket \(b) in the log yet") }
            return .local
        }
    }

    /// Whether this node owns `uid`'s bucket in its current view, served or still waiting. O(length).
    public func owns(_ uid: String) -> Bool {
        let b = bucket(of: uid)
        return view.withLock { $0.owners[b] == name }
    }

    /// Throws unless `uid` is served here.
    /// - Throws: ``OspreyError`` `misdirected` naming the owner, or `unavailable`.
    public func check(_ uid: String) throws {
        switch route(uid) {
        case .local: return
        case .remote(let owner): throw OspreyError.misdirected(uid, owner: owner)
        case .unavailable(let why): throw OspreyError(.unavailable, "user `\(uid)` cannot be served now: \(why); retry shortly")
        }
    }

    /// Throws for what a cluster node cannot do yet: change what every node serves.
    /// - Throws: ``OspreyError`` `conflict` saying so.
    func refuse(_ action: String) throws -> Never {
        throw OspreyError(.conflict, "\(action) is not possible on a node of a cluster yet: every node would have to load the change "
            + "(docs/operations.md, \"Partitioned serving\"); stop the nodes, run it with `osprey` on the store, and start them again")
    }
}
