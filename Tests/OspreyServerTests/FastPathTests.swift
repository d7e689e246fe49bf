import Foundation
import GRDB
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Logging
import NIOCore
import NIOHTTP1
@testable import OspreyEngine
import OspreyTestSupport
import ServiceLifecycle
import Synchronization
import Testing
@testable import OspreyServer
@testable import OspreyStorage
#if canImport(Glibc)
import Glibc
#endif

/// The event-loop fast path (``FastPathHandler``) on a live server: it answers as the router does,
/// passes on what it must not answer, and keeps a pipelining client's responses in order.
struct FastPathTests {
    struct Answer: Equatable, CustomStringConvertible {
        let status: Int
        let contentType: String?
        let body: String
        var description: String { "\(status) \(contentType ?? "-") \(body)" }
    }

    /// Runs `body` with two live servers over one manager: with the fast path and without. The
    /// fast one scores long top-k calls on a pool of `scanThreads` threads (nil: one per core; 0: on
    /// its event loops).
    /// `configure` changes the manager's settings; `access` is both servers' access control.
    func withServers(scanThreads: Int? = nil, access: AccessControl = .init(), configure: (inout Manager.Configuration) -> Void = { _ in },
                     _ body: @escaping @Sendable (_ fast: any TestClientProtocol, _ routed: any TestClientProtocol, TrainedStore) async throws -> Void) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        // No decision log, so the same top-k request gets the same answer (no event_id).
        var configuration = Manager.Configuration(exploration: .init(logDecisions: false))
        configure(&configuration)
        let manager = try Manager(stores: try t.reopen(), configuration: configuration, logger: quiet)
        let fast = buildApplication(manager: manager, configuration: .init(
            port: 0, maxBodyBytes: 2048, scanThreads: scanThreads, access: access), logger: quiet)
        let routed = buildApplication(manager: manager, configuration: .init(port: 0, maxBodyBytes: 2048, fastPath: false, access: access), logger: quiet)
        try await fast.test(.live) { f in
            try await routed.test(.live) { r in try await body(f, r, t) }
        }
    }

    func answer(_ client: any TestClientProtocol, _ method: HTTPRequest.Method, _ uri: String, _ body: String?) async throws -> Answer {
        try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { r in
            Answer(status: Int(r.status.code), contentType: r.headers[.contentType], body: String(buffer: r.body))
        }
    }

    func fastPathCount(_ client: any TestClientProtocol, _ counter: String = "osprey_http_fast_path_requests_total") async throws -> Int {
        try await client.execute(uri: "/metrics", method: .get) { r in
            let line = String(buffer: r.body).split(separator: "\n").first { $0.hasPrefix(counter + " ") }
            return line.flatMap { Int($0.split(separator: " ")[1]) } ?? -1
        }
    }

    @Test(arguments: [nil, 0] as [Int?])
    func theFastPathAnswersAsTheRouterDoes(scanThreads: Int?) async throws {
        try await withServers(scanThreads: scanThreads) { fast, routed, t in
            let uid = t.ratings[0].uid
            let requests: [(HTTPRequest.Method, String, String?, Int)] = [
                (.get, "/v1/models/demo/users/\(uid)/predict?item=i1", nil, 200),
                (.get, "/v1/models/demo/users/new%20user/predict?item=i2", nil, 200),
                (.get, "/v1/models/demo/users/\(uid)/predict", nil, 400),
                (.get, "/v1/models/demo/users/\(uid)/predict?item=", nil, 400),
                (.get, "/v1/models/nope/users/\(uid)/predict?item=i1", nil, 404),
                (.get, "/v1/models/demo/users/\(uid)/predict?item=nope", nil, 404),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":3}"#, 200),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["i1","i2","i3","i1"],"exclude":["i2"]}"#, 200),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":5,"exclude_observed":true}"#, 200),
                // Long candidate lists, scored on the scan pool when there is one.
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["# + String(repeating: #""i1","#, count: 300) + #""i2"]}"#, 200),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["# + String(repeating: #""i1","#, count: 300) + #""nope"]}"#, 404),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":100000}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":0}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", "", 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["nope"]}"#, 404),
                (.post, "/v1/models/nope/users/\(uid)/topk", #"{"k":2}"#, 404),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":[""# + String(repeating: #""i1","#, count: 600) + #""i2"]}"#, 413),
                // Read strictly, as openapi.yaml's TopKRequest says (StrictDecoding.swift).
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"explore":null}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"exclude_observd":true}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"k":3}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":99999999999999999999}"#, 400),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2.0,"items":["i1","i2","i3"]}"#, 200),
            ]
            let before = try await fastPathCount(fast), scannedBefore = try await fastPathCount(fast, "osprey_http_scanned_requests_total")
            for (method, uri, body, status) in requests {
                let a = try await answer(fast, method, uri, body), b = try await answer(routed, method, uri, body)
                #expect(a == b, "\(method) \(uri)")
                #expect(a.status == status, "\(method) \(uri): \(a)")
            }
            let after = try await fastPathCount(fast)
            // All but the one with exclude_observed (passed on to the router, which reads the store).
            #expect(after - before == requests.count - 1)
            // The scan pool answered the whole-catalogue rankings (those with a bad k too: the
            // answer checks k) and the long lists, not the short lists nor the bodies, models and
            // sizes rejected while reading the request.
            let scanned = try await fastPathCount(fast, "osprey_http_scanned_requests_total") - scannedBefore
            #expect(scanned == (scanThreads == 0 ? 0 : 5), "\(scanned) scanned")
            #expect(try await fastPathCount(routed) == 0)
            // Both answers were counted by route, as the router counts them.
            let metrics = try await fast.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains(#"osprey_http_requests_total{route="predict",status="200"} 2"#))
            #expect(metrics.contains(#"osprey_http_requests_total{route="topk",status="413"} 1"#))
        }
    }

    /// `observe` on the fast path: the same answers as the router's for good and bad bodies, each
    /// acknowledged observation in the log and learned by the time it is answered, and those naming
    /// an `event_id` passed on to the router.
    @Test func observeOnTheFastPathAnswersAsTheRouterDoes() async throws {
        try await withServers { fast, routed, t in
            // (path, body, status, passed on to the router once read)
            let requests: [(String, String, Int, Bool)] = [
                ("demo/users/fresh-1", #"{"item":"i1","label":4.5}"#, 200, false),
                ("demo/users/fresh-2", #"{"item":7,"label":-1}"#, 200, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":"x"}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":1e39}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"","label":1}"#, 400, false),
                ("demo/users/fresh-3", #"{"label":1}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":1"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":1,"event_id":"no-such-decision"}"#, 404, true),
                ("nope/users/fresh-3", #"{"item":"i2","label":1}"#, 404, false),
                ("demo/users/fresh-3", #"{"item":""# + String(repeating: "i", count: 3000) + #"","label":1}"#, 413, false),
                // Read strictly (StrictDecoding.swift); an empty event_id is passed on like any other.
                ("demo/users/fresh-3", #"{"item":"i2","label":1,"event_id":""}"#, 400, true),
                ("demo/users/fresh-3", #"{"item":"i2","label":1,"event_id":null}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":1,"extra":true}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":1,"item":"i3"}"#, 400, false),
                ("demo/users/fresh-3", #"{"item":"i2","label":3.4028235e38}"#, 400, false),
            ]
            let logged = try t.reopen()
            let before = try await fastPathCount(fast)
            var accepted = 0
            for (path, body, status, _) in requests {
                let uri = "/v1/models/\(path)/observe"
                let a = try await answer(fast, .post, uri, body), b = try await answer(routed, .post, uri, body)
                #expect(a == b, "\(uri) \(body)")
                #expect(a.status == status, "\(uri) \(body): \(a)")
                if a.status == 200 { accepted += 2 }
                // Durable when answered: another connection to the log sees it.
                #expect(try logged.log.observationCount(model: "demo") == accepted)
            }
            // Learned when answered: the fresh user has one observation.
            let info = try await answer(fast, .get, "/v1/models/demo/users/fresh-1", nil)
            #expect(info.body.contains(#""observations":2"#), "\(info)")
            // All but those naming an event id (its decision is looked up in the log).
            #expect(try await fastPathCount(fast) - before == requests.filter { !$0.3 }.count)
            let metrics = try await fast.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metrics.contains(#"osprey_http_requests_total{route="observe",status="200"} 2"#))
            #expect(metrics.contains(#"osprey_http_requests_total{route="observe",status="413"} 1"#))
        }
    }

    /// An observe and two predicts for the same user sent at once on one connection: the
    /// predicts are held while the observe commits, then answered in order, reflecting it.
    @Test func requestsBehindAnObserveWaitForItsCommit() async throws {
        try await withServers { fast, _, t in
            let port = try #require(fast.port)
            let prior = try await answer(fast, .get, "/v1/models/demo/users/pipelined/predict?item=i1", nil)
            let observe = #"{"item":"i1","label":5}"#
            let predict = "GET /v1/models/demo/users/pipelined/predict?item=i1 HTTP/1.1\r\nHost: x\r\n\r\n"
            let requests = "POST /v1/models/demo/users/pipelined/observe HTTP/1.1\r\nHost: x\r\nContent-Length: \(observe.utf8.count)\r\n\r\n"
                + observe + predict + "GET /v1/models/demo HTTP/1.1\r\nHost: x\r\n\r\n" + predict
            let reply = try await Self.exchange(port: port, send: requests, until: { $0.components(separatedBy: "HTTP/1.1 200").count == 5 })
            let after = try await answer(fast, .get, "/v1/models/demo/users/pipelined/predict?item=i1", nil)
            #expect(after.body != prior.body)
            let accepted = try #require(reply.range(of: #""accepted":true"#))
            let predicts = reply.ranges(of: after.body)
            let info = try #require(reply.range(of: "\"versions\""))
            #expect(predicts.count == 2, "\(reply)")
            #expect(accepted.lowerBound < (predicts.first?.lowerBound ?? reply.startIndex), "\(reply)")
            #expect((predicts.first?.lowerBound ?? reply.endIndex) < info.lowerBound, "\(reply)")
            #expect(info.lowerBound < (predicts.last?.lowerBound ?? reply.startIndex), "\(reply)")
        }
    }

    /// Requests sent at once on one connection behind whole-catalogue top-k calls, which are scored
    /// on the scan pool: each is answered in its turn, with the answer a lone request gets.
    @Test func requestsBehindAScannedTopKWaitForIt() async throws {
        try await withServers { fast, _, t in
            let port = try #require(fast.port)
            let uid = t.ratings[0].uid
            let topk = { (k: Int) in
                let body = #"{"k":\#(k)}"#
                return "POST /v1/models/demo/users/\(uid)/topk HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
            }
            let alone = try await answer(fast, .post, "/v1/models/demo/users/\(uid)/topk", #"{"k":3}"#)
            let aloneOne = try await answer(fast, .post, "/v1/models/demo/users/\(uid)/topk", #"{"k":1}"#)
            let predict = try await answer(fast, .get, "/v1/models/demo/users/\(uid)/predict?item=i1", nil)
            let requests = topk(3) + "GET /v1/models/demo/users/\(uid)/predict?item=i1 HTTP/1.1\r\nHost: x\r\n\r\n"
                + topk(1) + "GET /v1/models/demo HTTP/1.1\r\nHost: x\r\n\r\n" + topk(3)
            let reply = try await Self.exchange(port: port, send: requests, until: { $0.components(separatedBy: "HTTP/1.1 200").count == 6 })
            let threes = reply.ranges(of: alone.body)
            let first = try #require(threes.first), last = try #require(threes.last)
            let p = try #require(reply.range(of: predict.body))
            let one = try #require(reply.range(of: aloneOne.body))
            let info = try #require(reply.range(of: "\"versions\""))
            #expect(threes.count == 2, "\(reply)")
            #expect(first.lowerBound < p.lowerBound && p.lowerBound < one.lowerBound && one.lowerBound < info.lowerBound
                        && info.lowerBound < last.lowerBound, "\(reply)")
        }
    }

    /// A request that does not keep its connection alive goes to the router: with
    /// `Connection: close` it closes the connection after the answer (the read ends only when it
    /// does); HTTP/1.0 without keep-alive gets the same answer (Hummingbird keeps such connections
    /// open, as it does for every request).
    @Test func requestsNotKeptAliveGoToTheRouter() async throws {
        try await withServers { fast, _, t in
            let port = try #require(fast.port)
            let predict = try await answer(fast, .get, "/v1/models/demo/users/u1/predict?item=i1", nil)
            let before = try await fastPathCount(fast)
            let closing = "GET /v1/models/demo/users/u1/predict?item=i1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let closed = try await Self.exchange(port: port, send: closing, until: { _ in false })
            #expect(closed.hasPrefix("HTTP/1.1 200 OK") && closed.hasSuffix(predict.body), "\(closed)")
            let old = "GET /v1/models/demo/users/u1/predict?item=i1 HTTP/1.0\r\n\r\n"
            let reply = try await Self.exchange(port: port, send: old, until: { $0.hasSuffix(predict.body) })
            #expect(reply.contains(" 200 OK") && reply.hasSuffix(predict.body), "\(reply)")
            #expect(try await fastPathCount(fast) == before, "answered by the router")
        }
    }

    /// Two requests sent at once on one connection: a slow one for the router, then a predict the
    /// fast path could answer at once. The responses come back in request order.
    @Test func aPipeliningClientGetsItsResponsesInOrder() async throws {
        try await withServers { fast, _, t in
            let port = try #require(fast.port)
            let uid = t.ratings[0].uid
            let topkBody = #"{"k":40,"exclude_observed":true}"#
            let requests = "POST /v1/models/demo/users/\(uid)/topk HTTP/1.1\r\nHost: x\r\nContent-Length: \(topkBody.utf8.count)\r\n\r\n" + topkBody
                + "GET /v1/models/demo HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /v1/models/demo/users/\(uid)/predict?item=i1 HTTP/1.1\r\nHost: x\r\n\r\n"
            let reply = try await Self.exchange(port: port, send: requests, until: { $0.components(separatedBy: "HTTP/1.1 200").count == 4 })
            let topk = try #require(reply.range(of: "\"items\"")), info = try #require(reply.range(of: "\"versions\""))
            let predict = try #require(reply.range(of: #""uid":"\#(uid)","item":"i1","score":"#))
            #expect(topk.lowerBound < info.lowerBound && info.lowerBound < predict.lowerBound, "\(reply)")
        }
    }

    /// A graceful shutdown that begins while a fast-path `observe` is committing: the
    /// connection stays open until the observation is answered (it was logged, so an answer
    /// lost here would make a retrying client log it twice).
    @Test(arguments: TrainedStore.Backend.durable)
    func aGracefulShutdownWaitsForACommittingObserve(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let (ports, announce) = AsyncStream.makeStream(of: Int.self)
        let app = Announced(base: buildApplication(manager: manager, configuration: .init(port: 0), logger: quiet)) {
            announce.yield($0)
        }
        let group = ServiceGroup(services: [app], logger: quiet)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var listening = ports.makeAsyncIterator()
            let port = try #require(await listening.next())
            // The observe's commit waits for the log's lock until the server has stopped listening
            // (the shutdown has reached the connections). When the shutdown comes more than 5 s
            // after the commit started, the observe is answered before it: the test proves less,
            // but does not fail.
            let committer = manager.ingestor
            try await Self.holdLogLock(t, committer: committer, linger: .milliseconds(100)) { !Self.listens(port: port) }
            let body = #"{"item":"i1","label":5}"#
            let request = "POST /v1/models/demo/users/shutdown-user/observe HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body
            async let reply = Self.exchange(port: port, send: request, until: { $0.hasSuffix("}") })
            // The shutdown starts once the observe is in its commit, which waits.
            let deadline = ContinuousClock.now + .seconds(30)
            while !committer.isCommitting, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(committer.isCommitting, "the observe reached the commit")
            await group.triggerGracefulShutdown()
            let text = try await reply
            #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
            #expect(text.contains(#""accepted":true"#), "\(text)")
            try await tasks.waitForAll()
        }
        let logged = try t.reopen().log.observations(model: "demo", after: 0, limit: 1_000_000).filter { $0.observation.uid == "shutdown-user" }
        #expect(logged.count == 1)
    }

    /// `--event-loops 1`: the server runs on a group of one loop, which every connection shares,
    /// so an `observe` waiting for its commit (another connection holds the log's write lock)
    /// must not hold that loop: a predict on another connection is answered meanwhile.
    @Test(arguments: TrainedStore.Backend.durable)
    func oneEventLoopAnswersOthersWhileAnObserveCommits(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let app = buildApplication(manager: manager, configuration: .init(port: 0, eventLoops: 1), logger: quiet)
        #expect(Array(app.eventLoopGroup.makeIterator()).count == 1)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let committer = manager.ingestor
            let predicted = Atomic<Bool>(false)
            // Held until the predict is answered.
            try await Self.holdLogLock(t, committer: committer) { predicted.load(ordering: .acquiring) }
            func exchange(_ request: String) async throws -> String {
                try await Self.exchange(port: port, send: request, until: { $0.hasSuffix("}") })
            }
            let body = #"{"item":"i1","label":5}"#
            async let observed = exchange(
                "POST /v1/models/demo/users/one-loop/observe HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
            let deadline = ContinuousClock.now + .seconds(30)
            while !committer.isCommitting, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(committer.isCommitting, "the observe reached the commit")
            let predict = try await exchange("GET /v1/models/demo/users/\(t.ratings[0].uid)/predict?item=i1 HTTP/1.1\r\nHost: x\r\n\r\n")
            let stillCommitting = committer.isCommitting
            predicted.store(true, ordering: .releasing)
            #expect(predict.hasPrefix("HTTP/1.1 200") && predict.contains(#""score":"#), "\(predict)")
            #expect(stillCommitting, "the predict was answered while the observe waited for its commit")
            let observe = try await observed
            #expect(observe.hasPrefix("HTTP/1.1 200") && observe.contains(#""accepted":true"#), "\(observe)")
        }
    }

    /// Holds the log's write lock from another connection, so an observe's commit waits for it;
    /// returns once it is held. It is released once a commit has started (waiting 30 s at most)
    /// and then `released` holds (5 s at most; SQLite's busy timeout is 10 s), `linger` later.
    /// SQLite's is the database's write lock; PostgreSQL's, the row of `observation_sequence`
    /// that every append locks first. A thread of its own holds it (``onThread(_:)``).
    static func holdLogLock(_ t: TrainedStore, committer: Ingestor, linger: Duration = .zero,
                            releasedWhen released: @escaping @Sendable () -> Bool) async throws {
        let hold: @Sendable (_ whileHeld: () -> Void) throws -> Void
        if let postgres = t.postgres {
            hold = { whileHeld in
                try postgres.log.database.transaction { s in
                    _ = try s.query("SELECT last FROM observation_sequence FOR UPDATE")
                    whileHeld()
                }
            }
        } else {
            let blocker = try #require(try t.reopenSQLite()).log.database
            hold = { whileHeld in
                try blocker.pool.writeWithoutTransaction { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    whileHeld()
                    try db.execute(sql: "ROLLBACK")
                }
            }
        }
        try await withCheckedThrowingContinuation { (locked: CheckedContinuation<Void, any Error>) in
            Thread {
                do {
                    try hold {
                        locked.resume()
                        let started = ContinuousClock.now + .seconds(30)
                        while ContinuousClock.now < started, !committer.isCommitting { usleep(5_000) }
                        let deadline = ContinuousClock.now + .seconds(5)
                        while ContinuousClock.now < deadline, !released() { usleep(10_000) }
                        usleep(useconds_t(linger / .microseconds(1)))
                    }
                } catch {
                    locked.resume(throwing: error)
                }
            }.start()
        }
    }

    /// Runs blocking test work (a socket, a held lock) on a new thread of its own: not on the
    /// concurrency pool, whose threads the server needs and where a sleeping task wakes late
    /// when parallel tests keep it busy, and not on Dispatch's global queue, which on Linux starts
    /// about one item per core at once and adds a thread about once a second while they block,
    /// so the blocking items of parallel tests queue behind each other (an observe sent 30 s late).
    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    /// Whether a TCP connection to 127.0.0.1:`port` is accepted (it is closed at once).
    static func listens(port: Int) -> Bool {
        guard let fd = connected(port: port) else { return false }
        close(fd)
        return true
    }

    /// A blocking TCP socket connected to 127.0.0.1:`port` (reads time out after 10 s), or nil
    /// when the connection is refused.
    static func connected(port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard status == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends `text` on a fresh TCP connection to 127.0.0.1:`port` and reads until `until` holds
    /// (at most 10 s), on a thread of its own (``onThread(_:)``).
    static func exchange(port: Int, send text: String, until done: @escaping @Sendable (String) -> Bool) async throws -> String {
        try await onThread { try blockingExchange(port: port, send: text, until: done) }
    }

    private static func blockingExchange(port: Int, send text: String, until done: (String) -> Bool) throws -> String {
        guard let fd = connected(port: port) else { throw POSIXError(.ECONNREFUSED) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else { throw POSIXError(.EIO) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !done(String(decoding: received, as: UTF8.self)) {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { break }
            received += chunk[0..<n]
        }
        return String(decoding: received, as: UTF8.self)
    }
}

/// The fast path's reading of a request target: the routes it takes, with their path segments
/// and `item` percent-decoded as the router decodes them, and every other target left to the router.
struct FastPathRouteTests {
    static func describe(_ method: String, _ path: String) -> String {
        let request = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method), uri: path)
        guard let route = FastPathHandler.route(request) else { return "router" }
        switch route.endpoint {
        case .predict: return "predict \(route.model) \(route.uid) \(route.item ?? "<none>")"
        case .topK: return "topk \(route.model) \(route.uid)"
        case .observe: return "observe \(route.model) \(route.uid)"
        default: return "unexpected \(route.endpoint)"
        }
    }

    /// The router and the fast path read the same table: every fast-path entry is a route the
    /// router has, and the fast path takes a request of exactly those.
    @Test func theFastPathTakesExactlyTheTablesFastPathEndpoints() {
        #expect(FastPathHandler.patterns.map(\.endpoint) == Endpoint.allCases.filter(\.onFastPath))
        for endpoint in Endpoint.allCases {
            let path = endpoint.path.replacingOccurrences(of: "{model}", with: "m").replacingOccurrences(of: "{uid}", with: "u")
                .replacingOccurrences(of: "{id}", with: "1")
            let taken = FastPathHandler.route(HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: endpoint.method.rawValue), uri: path))
            #expect(taken?.endpoint == (endpoint.onFastPath ? endpoint : nil), "\(endpoint.method) \(path)")
        }
    }

    @Test(arguments: [
        ("GET", "/v1/models/m/users/u1/predict?item=i1", "predict m u1 i1"),
        ("GET", "/v1/models/m/users/u1/predict?other=1&item=a%2Fb&item=second", "predict m u1 a/b"),
        ("GET", "/v1/models/m/users/u1/predict?items=x&item=a+b", "predict m u1 a b"),
        ("GET", "/v1/models/m/users/u1/predict?item=", "predict m u1 "),
        ("GET", "/v1/models/m/users/u1/predict?item", "predict m u1 <none>"),
        ("GET", "/v1/models/m/users/u1/predict", "predict m u1 <none>"),
        ("GET", "/v1/models/m/users/u1/predict?", "predict m u1 <none>"),
        ("GET", "/v1/models/m%20x/users/new%20user/predict?item=%C3%A9", "predict m x new user é"),
        ("GET", "/v1/models/m/users/é/predict?item=ü", "predict m é ü"),
        ("POST", "/v1/models/m/users/u1/topk", "topk m u1"),
        ("POST", "/v1/models/m/users/u1/topk?debug=1", "topk m u1"),
        ("POST", "/v1/models/m/users/u1/observe", "observe m u1"),
        ("GET", "/v1/models/m/users/u1/topk", "router"),
        ("POST", "/v1/models/m/users/u1/predict?item=i1", "router"),
        ("PUT", "/v1/models/m/users/u1/observe", "router"),
        ("GET", "/v1/models/m/users/u1/predictx?item=i1", "router"),
        ("GET", "/v1/models/m/users/u1/predict/?item=i1", "router"),
        ("GET", "/v1/models/m/users/u1/predict/x?item=i1", "router"),
        ("GET", "/v1/models//users/u1/predict?item=i1", "router"),
        ("GET", "/v1/models/m/users//predict?item=i1", "router"),
        ("GET", "/v1/models/m/user/u1/predict?item=i1", "router"),
        ("GET", "/v2/models/m/users/u1/predict?item=i1", "router"),
        ("GET", "//v1/models/m/users/u1/predict?item=i1", "router"),
        ("GET", "/v1/models/m/users/u1", "router"),
        ("GET", "/v1/models/m%2/users/u1/predict?item=i1", "router"),
        ("GET", "http://example.com/v1/models/m/users/u1/predict?item=i1", "router"),
        ("GET", "*", "router"),
        ("HEAD", "/v1/models/m/users/u1/predict?item=i1", "router"),
        ("GET", "/", "router"),
        ("GET", "", "router"),
    ])
    func routes(_ method: String, _ path: String, _ expected: String) {
        #expect(Self.describe(method, path) == expected, "\(method) \(path)")
    }
}

/// The direct reader of top-k and observe bodies agrees with `JSONDecoder` (read strictly, as
/// ``API/decodeJSON(_:from:emptyAs:)`` reads) on every body, and hands the unusual ones (and every
/// malformed one) to it. RequestParserEquivalenceTests compares both with plain Codable mirrors.
struct DirectReaderTests {
    @Test(arguments: [
        #"{"k":10}"#, #"{}"#, #" { "k" : 3 , "items" : [ "i1" , 7 , "i3" ] } "#, #"{"items":[]}"#,
        #"{"k":2,"exclude":["a b","c"],"exclude_observed":true,"explore":false}"#, #"{"explore":true,"k":1}"#,
        #"{"k":007}"#, #"{"k":-1}"#, #"{"k":1.5}"#, #"{"k":1e2}"#, #"{"k":null}"#, #"{"k":1,"k":2}"#,
        #"{"items":["é"]}"#, #"{"items":["a\"b"]}"#, #"{"items":["a\u0041"]}"#, #"{"other":1,"k":4}"#,
        #"{"k":99999999999999999999}"#, #"{"k":"10"}"#, #"{"k":10"#, #"{"k":10}x"#, #"[1]"#, #"{"items":[1,]}"#,
        #"{"exclude_observed":tru}"#, #"{"items":[12345678901234567890]}"#,
    ])
    func directAndJSONDecoderAgree(_ text: String) throws {
        let buffer = ByteBuffer(string: text)
        let expected = Result { try API.decodeJSON(TopKBody.self, from: buffer) }
        let got = Result { try TopKBody.decode(from: buffer) }
        switch (expected, got) {
        case (.success(let a), .success(let b)): #expect(a == b, "\(text)")
        case (.failure, .failure): break
        default: Issue.record("\(text): JSONDecoder \(expected), direct \(got)")
        }
    }

    @Test(arguments: [
        #"{"item":"i1","label":4}"#, #"{"label":4.5,"item":"i1"}"#, #" {"item" : 17 , "label" : -0.25 , "event_id" : "e-1"} "#,
        #"{"item":"i1","label":-0}"#, #"{"item":"i1","label":1e2}"#, #"{"item":"i1","label":01}"#, #"{"item":"i1","label":1.}"#,
        #"{"item":"i1","label":.5}"#, #"{"item":"i1"}"#, #"{"label":3}"#, #"{}"#, #"{"item":"i1","label":3,"event_id":null}"#,
        #"{"item":"i1","label":3,"event_id":7}"#, #"{"item":-5,"label":3}"#, #"{"item":"i1","label":"3"}"#,
        #"{"item":"i1","label":3,"item":"i2"}"#, #"{"item":"i1","label":0.1000000000000000055511151231257827}"#,
        #"{"item":"i1","label":3}x"#, #"{"item":"i\u0031","label":3}"#, #"{"item":"i1","label":3,}"#,
    ])
    func observeBodiesAgree(_ text: String) throws {
        let expected = Result { try API.decodeJSON(ObserveBody.self, from: ByteBuffer(string: text)) }
        let got = Result { try ObserveBody.decode(from: ByteBuffer(string: text)) }
        switch (expected, got) {
        case (.success(let a), .success(let b)): #expect(a == b && a.label.sign == b.label.sign, "\(text)")
        case (.failure, .failure): break
        default: Issue.record("\(text): JSONDecoder \(expected), direct \(got)")
        }
    }
}

/// An application that reports the port it listens on (the tests start servers on port 0).
struct Announced<Base: ApplicationProtocol>: ApplicationProtocol {
    let base: Base
    let listening: @Sendable (Int) -> Void

    var responder: Base.Responder { get async throws { try await base.responder } }
    var server: HTTPServerBuilder { base.server }
    var eventLoopGroup: any EventLoopGroup { base.eventLoopGroup }
    var configuration: ApplicationConfiguration { base.configuration }
    var logger: Logger { base.logger }
    var services: [any Service] { base.services }
    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { base.processesRunBeforeServerStart }

    func onServerRunning(_ channel: any Channel) async {
        await base.onServerRunning(channel)
        if let port = channel.localAddress?.port { listening(port) }
    }
}

extension FastPathTests {
    /// An observe retried with its `observation_id` is answered `"duplicate":true` and not learned
    /// again, on the fast path and the router alike; a bulk call counts its duplicates.
    @Test func aRetriedObservationIdIsADuplicateOnBothPaths() async throws {
        try await withServers { fast, routed, _ in
            for (client, user) in [(fast, "retry-fast"), (routed, "retry-routed")] {
                // Ids are unique per model: each server's user has its own.
                let body = #"{"item":"i1","label":4,"observation_id":"order-"# + user + #""}"#
                let first = try await answer(client, .post, "/v1/models/demo/users/\(user)/observe", body)
                let retry = try await answer(client, .post, "/v1/models/demo/users/\(user)/observe", body)
                #expect(first.status == 200 && first.body.contains(#""duplicate":false"#), "\(first.body)")
                #expect(retry.status == 200 && retry.body.contains(#""duplicate":true"#), "\(retry.body)")
                let info = try await answer(client, .get, "/v1/models/demo/users/\(user)", nil)
                #expect(info.body.contains(#""observations":1"#), "\(info.body)")
            }
            let bulk = #"{"observations":[{"uid":"retry-fast","item":"i2","label":3,"observation_id":"order-retry-fast"},{"uid":"retry-fast","item":"i2","label":3,"observation_id":"order-2"}]}"#
            let answered = try await answer(routed, .post, "/v1/models/demo/observations", bulk)
            #expect(answered.status == 200 && answered.body == #"{"accepted":2,"duplicates":1}"#, "\(answered.body)")
        }
    }
}
