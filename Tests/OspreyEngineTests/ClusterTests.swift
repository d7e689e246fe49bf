import Foundation
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

/// Partitioned serving (docs/operations.md, "Partitioned serving"): nodes sharing one store each
/// serve the users the ring over the live members gives them, refuse the others naming their
/// owner, and take a dead node's users with every acknowledged observation.
struct ClusterTests {
    /// The backends a cluster runs on: memory (one process's stores, shared) and PostgreSQL.
    static let backends = TrainedStore.Backend.available.filter { $0 != .sqlite }

    /// A heartbeat a second: a gained bucket waits two seconds, and a node that has not beaten
    /// for two seconds fences itself, by the memory membership's clock, which the tests move.
    static func configuration(_ name: String) -> ClusterNode.Configuration {
        .init(member: ClusterMember(name: name, address: "127.0.0.1:\(name == "a" ? 9001 : 9002)"),
              heartbeatInterval: .seconds(1), memberTimeout: .seconds(10))
    }

    /// Two cluster nodes, `a` and `b`, each having seen the other.
    struct Pair {
        let membership = MemoryMembershipStore()
        let a: Manager, b: Manager
        let nodeA: ClusterNode, nodeB: ClusterNode
        let configuration: Manager.Configuration
        let contributions: (any ItemContributionStore)?

        /// On the trained store.
        init(_ t: TrainedStore, configuration: Manager.Configuration = .init()) throws {
            try self.init(t.stores, reopened: try t.reopen(), configuration: configuration)
        }

        /// `a` on `stores`, `b` on `reopened` (the same stores as another process opens them),
        /// exchanging item sums through `contributions` when given.
        init(_ stores: Stores, reopened: Stores, configuration: Manager.Configuration = .init(),
             contributions: (any ItemContributionStore)? = nil) throws {
            self.configuration = configuration
            self.contributions = contributions
            nodeA = ClusterNode(configuration: ClusterTests.configuration("a"), store: membership, contributions: contributions,
                                now: membership.clock)
            nodeB = ClusterNode(configuration: ClusterTests.configuration("b"), store: membership, contributions: contributions,
                                now: membership.clock)
            a = try Manager(stores: stores, configuration: configuration, logger: quiet, cluster: nodeA)
            b = try Manager(stores: reopened, configuration: configuration, logger: quiet, cluster: nodeB)
            beat()
        }

        /// Another node named `name` on `stores`, as the pair's are (not yet beating).
        func node(_ name: String, _ stores: Stores) throws -> Manager {
            try Manager(stores: stores, configuration: configuration, logger: quiet,
                        cluster: ClusterNode(configuration: ClusterTests.configuration(name), store: membership,
                                             contributions: contributions, now: membership.clock))
        }

        /// Sends each observation to its user's node.
        func observe(_ stream: [(uid: String, item: String, label: Float)]) async throws {
            for o in stream { try await ClusterTests.node(of: o.uid, a: a, b: b).observe(model: "demo", [(o.uid, o.item, o.label)]) }
        }

        /// Both beat, `a` twice so each has seen the other.
        func beat() {
            _ = a.heartbeats!.beatOnce()
            _ = b.heartbeats!.beatOnce()
            _ = a.heartbeats!.beatOnce()
        }

        /// Lets the handover delay of buckets just gained pass.
        func settle() {
            membership.advance(by: ClusterTests.configuration("a").handoverDelay)
            beat()
        }
    }

    /// The ring every node and the router compute: the first live node of the bucket's ranking.
    static func owner(of uid: String, live: Set<String>) -> String {
        PartitionRing(nodes: ["a", "b"]).owner(uid: uid, live: live)!
    }

    @Test(arguments: backends)
    func eachNodeServesOnlyItsUsersAndNamesTheOwnerOfOthers(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t)
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        let ofA = uids.filter { Self.owner(of: $0, live: ["a", "b"]) == "a" }
        let ofB = uids.filter { Self.owner(of: $0, live: ["a", "b"]) == "b" }
        #expect(!ofA.isEmpty && !ofB.isEmpty)

        // Before the handover delay, a node serves none of the buckets it just gained.
        #expect {
            _ = try Predictor(registry: pair.a.registry).predict(model: "demo", uid: ofA[0], item: "i1")
        } throws: { ($0 as? OspreyError)?.code == .unavailable }
        pair.settle()

        let logged = try t.stores.log.observationCount(model: "demo")
        // A request for another node's user names that node, and nothing is logged or held.
        await #expect {
            try await pair.a.observe(model: "demo", [(ofB[0], "i1", 5)])
        } throws: { error in
            let e = error as? OspreyError
            return e?.code == .misdirected && e?.owner == ClusterMember(name: "b", address: "127.0.0.1:9002")
        }
        // A batch spanning both nodes is refused whole: the caller splits it by owner.
        await #expect {
            try await pair.a.observe(model: "demo", [(ofA[0], "i1", 5), (ofB[0], "i1", 5)])
        } throws: { ($0 as? OspreyError)?.code == .misdirected }
        #expect {
            _ = try Predictor(registry: pair.a.registry).topK(model: "demo", uid: ofB[0], k: 3, items: nil)
        } throws: { ($0 as? OspreyError)?.code == .misdirected }
        #expect(try t.stores.log.observationCount(model: "demo") == logged)

        // Each node learns its own users, adopted from the stores when first served.
        let before = try pair.a.info(model: "demo", uid: ofA[0])
        #expect(!before.bootstrapped, "adopted from its snapshot row, not started from the prior")
        try await pair.a.observe(model: "demo", [(ofA[0], "i1", 5)])
        try await pair.b.observe(model: "demo", [(ofB[0], "i2", 1)])
        #expect(try pair.a.info(model: "demo", uid: ofA[0]).observations == before.observations + 1)
        #expect(try pair.a.registry.model("demo").current.users.count == 1, "a holds only the user it served")
        #expect(try pair.b.registry.model("demo").current.users.count == 1)

        // What nodes cannot load yet is refused, saying so.
        #expect {
            _ = try pair.b.retrainer.start(model: "demo", challenger: .split(0.5))
        } throws: { ($0 as? OspreyError)?.code == .conflict }

        // A policy set on one node is announced; the other takes it at once.
        try pair.a.exploration.setPolicy(model: "demo", .linUCB(0.5))
        try await Self.eventually("b follows the policy") { try pair.b.registry.model("demo").exploration == .linUCB(0.5) }
        // One set behind the nodes' backs is taken at the next heartbeat.
        try t.stores.versions.setExplorationPolicy(model: "demo", policy: "thompson(1.0)")
        pair.beat()
        #expect(try pair.a.registry.model("demo").exploration == .thompson(1.0) && pair.b.registry.model("demo").exploration == .thompson(1.0))
    }

    /// The node that serves `uid` when both serve: `a` or `b` as the ring over the two gives it.
    static func node(of uid: String, a: Manager, b: Manager) -> Manager {
        owner(of: uid, live: ["a", "b"]) == "a" ? a : b
    }

    /// Sends `count` observations of random users of `uids`, each to its node.
    static func observe(_ count: Int, of uids: [String], a: Manager, b: Manager) async throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<count {
            let uid = uids.randomElement(using: &rng)!
            try await node(of: uid, a: a, b: b).observe(
                model: "demo", [(uid, "i\(Int.random(in: 1...20, using: &rng))", Float.random(in: 1...5, using: &rng))])
        }
    }

    /// Expects every user, on its node, to predict as a lone process computes it from the stores
    /// (its last snapshot rows, then the whole log after them), by `version` when given.
    static func expectLoneReplay(_ t: TrainedStore, users: [String], a: Manager, b: Manager, version: Int? = nil) throws {
        let lone = Predictor(registry: try Manager(stores: try t.reopen(), logger: quiet).registry)
        for uid in users {
            let expected = try lone.predict(model: "demo", uid: uid, item: "i3")
            let got = try Predictor(registry: node(of: uid, a: a, b: b).registry).predict(model: "demo", uid: uid, item: "i3")
            #expect(abs(got.score - expected.score) < 1e-4 && got.version == (version ?? expected.version), "\(uid): \(got) against \(expected)")
        }
    }

    @Test(arguments: backends)
    func aDeadNodesUsersAreAdoptedWithEveryAcknowledgedObservation(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t)
        pair.settle()
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        try await Self.observe(60, of: uids, a: pair.a, b: pair.b)
        try pair.b.snapshotter.snapshot()  // b's rows move past the version's snapshot sequence
        try pair.a.snapshotter.snapshot()
        try await Self.observe(60, of: uids, a: pair.a, b: pair.b)  // b learns more it never saves
        #expect(try t.stores.snapshots.snapshotSequence(model: "demo", version: 1) == 0,
                "cluster nodes leave the version's sequence: it must hold for every node's users")

        // b dies: its heartbeats stop, and a takes its buckets after the timeout and the delay.
        pair.membership.advance(by: .seconds(11))
        let change = try #require(pair.a.heartbeats!.beatOnce())
        #expect(change.members.map(\.name) == ["a"] && change.lost.isEmpty && !change.gained.isEmpty)
        pair.membership.advance(by: Self.configuration("a").handoverDelay)
        _ = pair.a.heartbeats!.beatOnce()
        try Self.expectLoneReplay(t, users: uids, a: pair.a, b: pair.a)  // b's users are a's now

        // b comes back (a new process of the same name): it takes its buckets back, and a drops them.
        let b2 = try pair.node("b", try t.reopen())
        _ = b2.heartbeats!.beatOnce()
        let back = try #require(pair.a.heartbeats!.beatOnce())
        #expect(back.lost == change.gained, "b takes back exactly the buckets it had")
        #expect(try pair.a.registry.model("demo").current.users.count == uids.count { Self.owner(of: $0, live: ["a", "b"]) == "a" })
        pair.membership.advance(by: Self.configuration("b").handoverDelay)
        _ = b2.heartbeats!.beatOnce()
        _ = pair.a.heartbeats!.beatOnce()
        try await Self.observe(60, of: uids, a: pair.a, b: b2)
        try Self.expectLoneReplay(t, users: uids, a: pair.a, b: b2)
    }

    /// Polls until `condition` holds (an announcement is followed on a queue of its own). The
    /// deadline is generous: under the whole suite on two cores, the tasks these wait for can
    /// wait long for a thread of the concurrency pool.
    static func eventually(_ what: String, _ condition: () throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while try !condition() {
            guard ContinuousClock.now < deadline else { Issue.record("timed out: \(what)"); return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    @Test(arguments: backends)
    func aVersionTrainedOnOneNodeIsServedByEveryNode(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t)
        pair.settle()
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        func observe(_ count: Int) async throws { try await Self.observe(count, of: uids, a: pair.a, b: pair.b) }
        func expectLoneReplay(version: Int) throws { try Self.expectLoneReplay(t, users: uids, a: pair.a, b: pair.b, version: version) }
        try await observe(40)
        // b retrains; a learns of version 2 by the announcement and swaps it in too.
        let job = try pair.b.retrainer.start(model: "demo")
        let done = try await pair.b.retrainer.wait(forJob: job, model: "demo")
        #expect(done.version == 2 && done.error == nil)
        #expect(try pair.b.registry.model("demo").version.number == 2)
        try await Self.eventually("a follows version 2") { try pair.a.registry.model("demo").version.number == 2 }
        try await observe(40)
        try expectLoneReplay(version: 2)
        // A rollback on a goes to every node; a node started now serves what the store serves.
        try await pair.a.installer.rollback(model: "demo", to: 1)
        try await Self.eventually("b follows the rollback") { try pair.b.registry.model("demo").version.number == 1 }
        try await observe(20)
        try expectLoneReplay(version: 1)
        let later = try pair.node("c", try t.reopen())
        #expect(try later.registry.model("demo").version.number == 1)
        // A missed announcement is made up for at the next heartbeat.
        try t.stores.versions.setServing(model: "demo", version: 2)
        pair.beat()
        #expect(try pair.a.registry.model("demo").version.number == 2 && pair.b.registry.model("demo").version.number == 2)
    }

    @Test(arguments: backends)
    func itemsWrittenOnOneNodeAreServedByEveryNode(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t)
        pair.settle()
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        let ofA = uids.first { Self.owner(of: $0, live: ["a", "b"]) == "a" }!
        let ofB = uids.first { Self.owner(of: $0, live: ["a", "b"]) == "b" }!
        // An item written on a reaches b by the announcement; b scores it for its users.
        try pair.a.putItems(model: "demo", [("fresh", ["genre": .string("news")])])
        try await Self.eventually("b holds the new item") { (try? pair.b.item(model: "demo", id: "fresh")) != nil }
        #expect(try pair.b.item(model: "demo", id: "fresh").attributes == ["genre": .string("news")])
        _ = try Predictor(registry: pair.b.registry).predict(model: "demo", uid: ofB, item: "fresh")
        // An item hidden on b leaves a's top-k answers.
        let before = try Predictor(registry: pair.a.registry).topK(model: "demo", uid: ofA, k: 40, items: nil)
        let top = try #require(before.items.first?.item)
        try pair.b.setItemHidden(model: "demo", item: top, hidden: true)
        try await Self.eventually("a hides \(top)") {
            try !Predictor(registry: pair.a.registry).topK(model: "demo", uid: ofA, k: 40, items: nil).items.contains { $0.item == top }
        }
        // A write behind the nodes' backs (as a missed announcement) is read at the next heartbeat.
        try t.stores.versions.putItems(model: "demo", [CatalogueItem(id: "later", attributes: ["genre": .string("sport")])])
        pair.beat()
        #expect(try pair.a.item(model: "demo", id: "later").attributes == ["genre": .string("sport")])
        #expect(try pair.b.item(model: "demo", id: "later").attributes == ["genre": .string("sport")])
    }

    @Test(arguments: backends)
    func aModelMadeOnOneNodeIsServedByEveryNode(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t)
        pair.settle()
        _ = try pair.a.createModel(EmptyModel(name: "fresh", factors: 3, mean: 3))
        try await Self.eventually("b serves the new model") { pair.b.registry.contains("fresh") }
        // Each node learns its own users of it from their first observation.
        let ofB = (0..<40).map { "v\($0)" }.first { Self.owner(of: $0, live: ["a", "b"]) == "b" }!
        try await pair.b.observe(model: "fresh", [(ofB, "x1", 5)])
        #expect(try pair.b.info(model: "fresh", uid: ofB).observations == 1)
        await #expect {
            try await pair.a.observe(model: "fresh", [(ofB, "x1", 5)])
        } throws: { ($0 as? OspreyError)?.code == .misdirected }
        // One made behind the nodes' backs (as a missed announcement) is loaded at the next heartbeat.
        _ = try Manager(stores: try t.reopen(), logger: quiet).createModel(EmptyModel(name: "later", factors: 2))
        pair.beat()
        #expect(pair.a.registry.contains("later") && pair.b.registry.contains("later"))
    }

    @Test(arguments: backends)
    func oneNodeRetrainsAModelAtATime(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let pair = try Pair(t, configuration: .init(autoRetrain: true, autoRetrainLimit: .init(minimumInterval: .zero, perHour: 100)))
        pair.settle()
        let model = try pair.a.registry.model("demo")
        func jobs(_ m: Manager) -> Int { m.retrainer.jobs.withLock { $0.jobs.count } }
        // While b holds the model's retrain (as while its job runs), a's is refused, naming b,
        // and a's users going stale start none.
        #expect(try pair.nodeB.claimRetrain(model: "demo") == nil)
        #expect {
            _ = try pair.a.retrainer.start(model: "demo")
        } throws: { ($0 as? OspreyError)?.code == .conflict && "\($0)".contains("node b") }
        pair.a.retrainer.wentStale(model)
        #expect(jobs(pair.a) == 0)
        // Once b gives it up, a's staleness retrains, every node serves the version, and a's claim
        // ends with its job.
        try pair.nodeB.releaseRetrain(model: "demo")
        pair.a.retrainer.wentStale(model)
        #expect(jobs(pair.a) == 1)
        try await Self.eventually("b serves version 2") { try pair.b.registry.model("demo").version.number == 2 }
        try await Self.eventually("a's claim ends with its job") { try pair.nodeB.claimRetrain(model: "demo") == nil }
        try pair.nodeB.releaseRetrain(model: "demo")
        // A claim held by a node that died is taken after the member timeout.
        #expect(try pair.nodeA.claimRetrain(model: "demo") == nil)
        #expect(try pair.nodeB.claimRetrain(model: "demo") == "a")
        pair.membership.advance(by: .seconds(11))
        _ = pair.b.heartbeats!.beatOnce()
        #expect(try pair.nodeB.claimRetrain(model: "demo") == nil)
    }

    /// Node `a` alone on `t`'s stores with `faults`, serving every bucket.
    static func soleNode(_ t: TrainedStore, faults: Faults) throws -> (Manager, ClusterNode, MemoryMembershipStore) {
        let membership = MemoryMembershipStore()
        let node = ClusterNode(configuration: configuration("a"), store: membership, now: membership.clock)
        let a = try Manager(stores: t.stores.injectingFaults(faults), logger: quiet, cluster: node)
        _ = a.heartbeats!.beatOnce()
        membership.advance(by: configuration("a").handoverDelay)
        _ = a.heartbeats!.beatOnce()
        return (a, node, membership)
    }

    @Test func anObservationWhoseUserMovesBeforeItsCommitIsNotLogged() async throws {
        let t = try TrainedStore(), faults = Faults()
        let (a, _, membership) = try Self.soleNode(t, faults: faults)
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        let stays = try #require(uids.first { Self.owner(of: $0, live: ["a", "b"]) == "a" })
        let moves = try #require(uids.first { Self.owner(of: $0, live: ["a", "b"]) == "b" })
        // The first commit holds in the log; the second observation waits behind it.
        faults.hold(.commit)
        let first = Task { try await a.observe(model: "demo", [(stays, "i1", 5)]) }
        try await Self.eventually("the first commit to hold in the log") { faults.calls(.commit) == 1 }
        let second = Task { try await a.observe(model: "demo", [(moves, "i1", 5)]) }
        try await Self.eventually("the second observation to wait") { a.ingestor.waitingCount == 1 }
        // b joins: the second user's bucket moves before its commit.
        try ClusterNode(configuration: Self.configuration("b"), store: membership, now: membership.clock).beat()
        _ = a.heartbeats!.beatOnce()
        faults.release(.commit)
        _ = try await first.value
        await #expect {
            _ = try await second.value
        } throws: { error in
            (error as? OspreyError)?.code == .unavailable && "\(error)".contains("moved to another node")
        }
        var logged: [String] = []
        try t.stores.log.forEachObservation(model: "demo", after: 0) { logged.append($0.observation.uid) }
        #expect(logged == [stays], "the moved user's observation is not logged")
    }

    @Test func aCommitSlowerThanTheHandoverIsFencedOnceTheNewOwnerClaimsTheBucket() async throws {
        let t = try TrainedStore(), faults = Faults()
        let (a, node, membership) = try Self.soleNode(t, faults: faults)
        let uids = Array(Set(t.ratings.map(\.uid))).sorted()
        let moves = try #require(uids.first { Self.owner(of: $0, live: ["a", "b"]) == "b" })
        // a's commit holds in the log, past its owner check...
        faults.hold(.commit)
        let pending = Task { try await a.observe(model: "demo", [(moves, "i1", 5)]) }
        try await Self.eventually("the commit to hold in the log") { faults.calls(.commit) == 1 }
        // ...while b joins and claims the user's bucket; a, which has not beaten since, still
        // thinks it owns the user.
        let b = try Manager(stores: t.stores, logger: quiet,
                            cluster: ClusterNode(configuration: Self.configuration("b"), store: membership, now: membership.clock))
        _ = b.heartbeats!.beatOnce()
        #expect(node.route(moves) == .local)
        faults.release(.commit)
        await #expect {
            _ = try await pending.value
        } throws: { error in
            (error as? OspreyError)?.code == .unavailable && "\(error)".contains("during the commit")
        }
        var logged: [String] = []
        try t.stores.log.forEachObservation(model: "demo", after: 0) { logged.append($0.observation.uid) }
        #expect(logged.isEmpty, "the fenced commit logged nothing")
    }

    @Test func anAdoptedUserDoesNotLearnAgainWhatItsAdoptionRead() async throws {
        let t = try TrainedStore()
        let pair = try Pair(t)
        pair.settle()
        let uid = try #require(t.ratings.map(\.uid).first { Self.owner(of: $0, live: ["a", "b"]) == "a" })
        // Logged by b's process while it still (wrongly) thought it served the user: the
        // adoption that follows reads it from the log.
        let seq = try #require(try t.stores.log.append([Observation(model: "demo", uid: uid, item: "i1", label: 5, time: 0)]).first!)
        let state = try pair.a.registry.state(model: "demo", uid: uid)
        #expect(state.users.adoptedThrough(uid) == seq)
        let seen = try pair.a.info(model: "demo", uid: uid).observations
        let logged = LoggedObservation(seq: seq, observation: Observation(model: "demo", uid: uid, item: "i1", label: 5, time: 0))
        #expect(try state.learn(logged) == false)
        #expect(try pair.a.info(model: "demo", uid: uid).observations == seen, "learned once, by the adoption")
    }

    @Test func aGainedBucketWaitsAndANodeThatCannotBeatFencesItself() throws {
        let membership = MemoryMembershipStore()
        let config = ClusterNode.Configuration(member: ClusterMember(name: "a", address: "h:1"),
                                               heartbeatInterval: .milliseconds(100), memberTimeout: .seconds(1))
        let node = ClusterNode(configuration: config, store: membership, now: membership.clock)
        guard case .unavailable = node.route("u1") else { Issue.record("a node serves no one before it joins"); return }
        try node.beat()
        guard case .unavailable = node.route("u1") else { Issue.record("a gained bucket waits its handover delay"); return }
        membership.advance(by: .milliseconds(250))
        try node.beat()
        guard case .unavailable = node.route("u1") else { Issue.record("the delay counts from the heartbeat that gained it"); return }
        membership.advance(by: .milliseconds(50))  // the delay is three heartbeat intervals
        guard case .unavailable(let unclaimed) = node.route("u1") else { Issue.record("a bucket not claimed in the log waits"); return }
        #expect(unclaimed.contains("not claimed"))
        node.claimed(node.unclaimedBuckets)  // as `Heartbeats` does once the log has them
        #expect(node.route("u1") == .local)
        membership.advance(by: .milliseconds(249))
        #expect(node.route("u1") == .local, "the last heartbeat began 299 ms ago")
        membership.advance(by: .milliseconds(1))
        guard case .unavailable(let why) = node.route("u1") else { Issue.record("a node whose heartbeats fail fences itself"); return }
        #expect(why.contains("membership store"))
        try node.beat()
        #expect(node.route("u1") == .local)
    }

    @Test func theNodesRingIsTheRoutersRankingOverTheLiveNodes() throws {
        let membership = MemoryMembershipStore()
        let nodes = ["a", "b", "c"].map {
            ClusterNode(configuration: .init(member: ClusterMember(name: $0, address: "\($0):1"), memberTimeout: .seconds(5)),
                        store: membership)
        }
        for n in nodes { try n.beat() }
        membership.advance(by: .seconds(3))  // c is silent from here
        for n in nodes.prefix(2) { try n.beat() }
        membership.advance(by: .seconds(3))
        for n in nodes.prefix(2) { try n.beat() }
        let router = PartitionRing(nodes: ["a", "b", "c"])  // what router-config ranks
        for k in 0..<500 {
            let uid = "user-\(k)"
            let owner = router.owner(uid: uid, live: ["a", "b"])!
            for n in nodes.prefix(2) {
                if owner == n.name { #expect(n.owns(uid)) } else { #expect(n.route(uid) == .remote(ClusterMember(name: owner, address: "\(owner):1"))) }
            }
        }
    }
}
