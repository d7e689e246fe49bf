import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// A cluster node over HTTP (docs/operations.md, "Partitioned serving"): another node's user is
/// answered `421 misdirected` with the owner's name and address, by the fast path and the router
/// alike, and nothing is logged; changes nodes cannot load yet are `409`.
struct ClusterAPITests {
    @Test func anotherNodesUserGets421NamingTheOwner() async throws {
        let t = try TrainedStore()
        let membership = MemoryMembershipStore()
        let b = ClusterNode(configuration: .init(member: ClusterMember(name: "b", address: "10.1.2.3:8082")), store: membership,
                            now: membership.clock)
        try b.beat()
        let node = ClusterNode(configuration: .init(member: ClusterMember(name: "a", address: "10.1.2.2:8081")), store: membership,
                               now: membership.clock)
        let manager = try Manager(stores: t.stores, logger: quiet, cluster: node)
        _ = manager.heartbeats!.beatOnce()
        membership.advance(by: node.configuration.handoverDelay)  // the memory store's clock: no request ages it
        _ = manager.heartbeats!.beatOnce()
        let ring = PartitionRing(nodes: ["a", "b"])
        let uids = Set(t.ratings.map(\.uid)).sorted()
        let mine = try #require(uids.first { ring.owner(uid: $0, live: ["a", "b"]) == "a" })
        let theirs = try #require(uids.first { ring.owner(uid: $0, live: ["a", "b"]) == "b" })
        let misdirected = #"{"error":{"code":"misdirected","message":"user `\#(theirs)` is served by node b at 10.1.2.3:8082; send its requests there (a router made by `osprey router-config` does)","owner":{"node":"b","address":"10.1.2.3:8082"}}}"#

        for fastPath in [true, false] {
            let app = buildApplication(manager: manager, configuration: .init(port: 0, fastPath: fastPath), logger: quiet)
            try await app.test(.live) { client in
                func answer(_ method: HTTPRequest.Method, _ uri: String, _ body: String? = nil) async throws -> (Int, String) {
                    try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { r in
                        (Int(r.status.code), String(buffer: r.body))
                    }
                }
                let logged = try t.stores.log.observationCount(model: "demo")
                for (method, uri, body) in [
                    (HTTPRequest.Method.get, "/v1/models/demo/users/\(theirs)/predict?item=i1", nil),
                    (.post, "/v1/models/demo/users/\(theirs)/topk", #"{"k":3}"#),
                    (.post, "/v1/models/demo/users/\(theirs)/observe", #"{"item":"i1","label":4}"#),
                    (.get, "/v1/models/demo/users/\(theirs)", nil),
                    (.post, "/v1/models/demo/observations",
                     #"{"observations":[{"uid":"\#(mine)","item":"i1","label":4},{"uid":"\#(theirs)","item":"i1","label":4}]}"#),
                ] as [(HTTPRequest.Method, String, String?)] {
                    let (status, text) = try await answer(method, uri, body)
                    #expect(status == 421 && text == misdirected, "fast path \(fastPath): \(method) \(uri): \(status) \(text)")
                }
                #expect(try t.stores.log.observationCount(model: "demo") == logged, "nothing of a misdirected request is logged")
                let (ok, _) = try await answer(.post, "/v1/models/demo/users/\(mine)/observe", #"{"item":"i1","label":4}"#)
                #expect(ok == 200)
                let (refused, text) = try await answer(.post, "/v1/models/demo/challenger", #"{"version":1,"allocation":"thompson"}"#)
                #expect(refused == 409 && text.contains("not possible on a node of a cluster"), "\(refused) \(text)")
            }
        }
        #expect(try t.stores.log.observationCount(model: "demo") == 2)
    }
}
