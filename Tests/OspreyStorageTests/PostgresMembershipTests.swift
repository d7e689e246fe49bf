import Foundation
import Synchronization
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// Cluster membership in PostgreSQL: heartbeats by the database's clock, leaving, one process
/// per node name, and the writer's lock shared by a cluster's nodes.
@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "no PostgreSQL server"))
struct PostgresMembershipTests {
    /// Nodes `a` and `b`, each with its own stores, on a fresh database.
    static func twoNodes() throws -> (ClusterMember, ClusterMember, PostgresMembership, PostgresMembership) {
        let url = try PostgresTestServer.freshDatabase()
        let a = ClusterMember(name: "a", address: "10.0.0.1:8080"), b = ClusterMember(name: "b", address: "10.0.0.2:8080")
        let membershipA = try PostgresMembership(database: try PostgresStores(url: url, access: .shared).database, name: "a")
        let membershipB = try PostgresMembership(database: try PostgresStores(url: url, access: .shared).database, name: "b")
        return (a, b, membershipA, membershipB)
    }

    @Test func aMemberIsLiveWhileItBeatsAndGoneAfterTheTimeoutOrWhenItLeaves() throws {
        let (a, b, membershipA, membershipB) = try Self.twoNodes()
        let timeout = Duration.milliseconds(600)

        #expect(try membershipA.heartbeat(a, timeout: timeout) == [a])
        #expect(try membershipB.heartbeat(b, timeout: timeout) == [a, b], "every live member, by name, with its address")
        // A new address is taken with the next heartbeat.
        let moved = ClusterMember(name: "b", address: "10.0.0.3:9090")
        #expect(try membershipB.heartbeat(moved, timeout: timeout) == [a, moved])

        Thread.sleep(forTimeInterval: 0.8)  // a beats again; b is silent past the timeout
        #expect(try membershipA.heartbeat(a, timeout: timeout) == [a])
        #expect(try membershipB.heartbeat(moved, timeout: timeout) == [a, moved], "b is back with its next heartbeat")
        try membershipB.leave("b")
        try membershipB.leave("b")  // idempotent
        #expect(try membershipA.heartbeat(a, timeout: timeout) == [a], "a member that left is gone at once")
    }

    @Test func oneLiveNodeHoldsAModelsRetrain() throws {
        let (a, b, membershipA, membershipB) = try Self.twoNodes()
        let timeout = Duration.milliseconds(600)
        _ = try membershipA.heartbeat(a, timeout: timeout)
        _ = try membershipB.heartbeat(b, timeout: timeout)

        // Claims from both at once: exactly one is granted, and the other names the holder.
        let outcomes = Mutex<[String: String?]>([:])
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let (m, name) = i == 0 ? (membershipA, "a") : (membershipB, "b")
            let holder = try? m.claimRetrain(model: "demo", node: name, timeout: timeout)
            outcomes.withLock { $0[name] = holder }
        }
        let granted = outcomes.withLock { o in o.filter { $0.value == nil }.map(\.key) }
        try #require(granted.count == 1, "\(outcomes.withLock { $0 })")
        let winner = granted[0], loser = winner == "a" ? "b" : "a"
        #expect(outcomes.withLock { $0[loser] } == .some(winner))
        let (held, waiting) = winner == "a" ? (membershipA, membershipB) : (membershipB, membershipA)
        #expect(try held.claimRetrain(model: "demo", node: winner, timeout: timeout) == nil, "the holder's claim again")
        #expect(try waiting.claimRetrain(model: "other", node: loser, timeout: timeout) == nil, "models are separate")
        // Released, it goes to the other; the holder leaving frees it too.
        try held.releaseRetrain(model: "demo", node: winner)
        #expect(try waiting.claimRetrain(model: "demo", node: loser, timeout: timeout) == nil)
        try waiting.leave(loser)
        #expect(try held.claimRetrain(model: "demo", node: winner, timeout: timeout) == nil)
        // A holder silent past the timeout loses it.
        _ = try waiting.heartbeat(loser == "a" ? a : b, timeout: timeout)
        Thread.sleep(forTimeInterval: 0.8)
        _ = try waiting.heartbeat(loser == "a" ? a : b, timeout: timeout)
        #expect(try waiting.claimRetrain(model: "demo", node: loser, timeout: timeout) == nil)
    }

    @Test func aNodeNameIsHeldByOneProcess() throws {
        let url = try PostgresTestServer.freshDatabase()
        let first = try PostgresStores(url: url, access: .shared)
        let second = try PostgresStores(url: url, access: .shared)
        let member = try PostgresMembership(database: first.database, name: "a")
        withExtendedLifetime(member) {
            #expect {
                _ = try PostgresMembership(database: second.database, name: "a")
            } throws: { error in
                (error as? StorageError)?.code == .locked && "\(error)".contains("another Osprey node named `a`")
            }
            #expect(throws: Never.self) { _ = try PostgresMembership(database: second.database, name: "b") }
        }
    }

    @Test func clusterNodesShareTheWriterLockThatALoneProcessTakesWhole() throws {
        let url = try PostgresTestServer.freshDatabase()
        do {
            let nodes = [try PostgresStores(url: url, access: .shared), try PostgresStores(url: url, access: .shared)]
            _ = withExtendedLifetime(nodes) {
                #expect {
                    _ = try PostgresStores(url: url)
                } throws: { error in
                    (error as? StorageError)?.code == .locked && "\(error)".contains("another Osprey process writes")
                }
            }
        }
        do {
            let lone = try PostgresStores(url: url)
            _ = withExtendedLifetime(lone) {
                #expect {
                    _ = try PostgresStores(url: url, access: .shared)
                } throws: { error in
                    (error as? StorageError)?.code == .locked && "\(error)".contains("before starting cluster nodes")
                }
            }
        }
    }
}

extension PostgresMembershipTests {
    @Test func aVersionAnnouncementReachesEveryListeningNode() throws {
        let url = try PostgresTestServer.freshDatabase()
        let first = try PostgresStores(url: url, access: .shared), second = try PostgresStores(url: url, access: .shared)
        let a = try PostgresMembership(database: first.database, name: "a")
        let b = try PostgresMembership(database: second.database, name: "b")
        let heard = Mutex<[String]>([])
        try a.onAnnouncement { model in heard.withLock { $0.append("a:" + model) } }
        try b.onAnnouncement { model in heard.withLock { $0.append("b:" + model) } }
        try a.announceChange(model: "movies")
        let deadline = Date().addingTimeInterval(10)
        while heard.withLock({ $0.count }) < 2, Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        #expect(heard.withLock { $0.sorted() } == ["a:movies", "b:movies"], "the announcer hears it too")
    }
}
