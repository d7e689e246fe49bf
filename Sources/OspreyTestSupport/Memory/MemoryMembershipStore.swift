import Foundation
import OspreyStorage
import Synchronization

/// Cluster membership in memory, for engine tests of several nodes in one process: heartbeats
/// are timed by a clock the test controls (``advance(by:)``), which nodes can time themselves by
/// too (``clock``), so a node can miss its heartbeats or wait out a handover without a test
/// waiting.
public final class MemoryMembershipStore: MembershipStore, Sendable {
    private struct State {
        var now: Duration = .zero
        var members: [String: (address: String, heartbeat: Duration)] = [:]
        /// Which node retrains each model.
        var retrains: [String: String] = [:]
    }

    private let state = Mutex(State())
    private let listeners = Mutex<[@Sendable (String) -> Void]>([])

    public init() {}

    /// Moves the store's clock on: members that do not beat again within their timeout leave.
    public func advance(by duration: Duration) {
        state.withLock { $0.now += duration }
    }

    /// The store's clock, for nodes to time their handovers and fencing by
    /// (``ClusterNode/init(configuration:store:now:)``): one clock the test moves for all.
    public var clock: @Sendable () -> Duration {
        { [self] in state.withLock { $0.now } }
    }

    public func heartbeat(_ member: ClusterMember, timeout: Duration) throws -> [ClusterMember] {
        state.withLock { s in
            s.members[member.name] = (member.address, s.now)
            return s.members.filter { s.now - $0.value.heartbeat <= timeout }
                .map { ClusterMember(name: $0.key, address: $0.value.address) }
                .sorted { $0.name < $1.name }
        }
    }

    public func leave(_ name: String) throws {
        state.withLock { s in
            s.members.removeValue(forKey: name)
            s.retrains = s.retrains.filter { $0.value != name }
        }
    }

    public func claimRetrain(model: String, node: String, timeout: Duration) throws -> String? {
        state.withLock { s in
            if let holder = s.retrains[model], holder != node,
               let beat = s.members[holder]?.heartbeat, s.now - beat <= timeout {
                return holder
            }
            s.retrains[model] = node
            return nil
        }
    }

    public func releaseRetrain(model: String, node: String) throws {
        state.withLock { s in
            if s.retrains[model] == node { s.retrains[model] = nil }
        }
    }

    /// Calls every listener, on the caller's thread.
    public func announceChange(model: String) throws {
        for listener in listeners.withLock({ $0 }) { listener(model) }
    }

    public func onAnnouncement(_ handler: @escaping @Sendable (String) -> Void) throws {
        listeners.withLock { $0.append(handler) }
    }
}
