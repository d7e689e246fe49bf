import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
@testable import OspreyServer

/// Access tokens (docs/operations.md, "Access tokens"): parsing, the constant-time comparison,
/// the loopback rule, and 401/403/200 for each role on the router and on the fast path.
struct AccessTokenTests {
    static let readToken = "read-token-0123456789"
    static let writeToken = "write-token-0123456789"
    static let adminToken = "admin-token-0123456789"
    static let readWriteToken = "rw-token-0123456789ab"

    static let tokens: AccessTokens = {
        let text = """
            # who may call what
            read \(readToken)

            write \(writeToken)
            admin \(adminToken)
            read,write \(readWriteToken)
            """
        return try! AccessTokens(parsing: text, source: "test")
    }()

    static func grants(_ tokens: AccessTokens, _ token: String) -> Set<AccessRole> {
        let grants = tokens.grants(of: token.utf8)
        return Set(AccessRole.allCases.filter { grants & $0.bit != 0 })
    }

    @Test func aTokensFileGivesEachTokenItsRolesAndTheRolesBelow() {
        let t = Self.tokens
        #expect(t.count == 4)
        #expect(Self.grants(t, Self.readToken) == [.read])
        #expect(Self.grants(t, Self.writeToken) == [.read, .write])
        #expect(Self.grants(t, Self.adminToken) == [.read, .write, .admin])
        #expect(Self.grants(t, Self.readWriteToken) == [.read, .write])
        #expect(Self.grants(t, "unknown-token-0123456789").isEmpty)
        #expect(Self.grants(t, String(Self.adminToken.dropLast())).isEmpty)
        #expect(Self.grants(t, Self.adminToken + "x").isEmpty)
        #expect(Self.grants(t, "").isEmpty)
    }

    @Test func theEnvironmentVariableTakesSemicolonsAndNewlines() throws {
        let t = try AccessTokens(parsing: "read \(Self.readToken); admin \(Self.adminToken)\nwrite \(Self.writeToken);",
                                 source: "OSPREY_TOKENS", separators: [";"])
        #expect(t.count == 3)
        #expect(Self.grants(t, Self.adminToken) == [.read, .write, .admin])
        #expect(Self.grants(t, Self.writeToken) == [.read, .write])
    }

    @Test(arguments: [
        ("read \(readToken)\n\nreed \(adminToken)\n", "test line 3: unknown role `reed`"),
        ("read \(readToken)\n\(adminToken) admin\n", "test line 2: unknown role;"),
        ("# c\nadmin\n", "test line 2: expected `ROLES TOKEN`"),
        ("admin \(adminToken) extra\n", "test line 1: expected `ROLES TOKEN`"),
        ("read shorttoken123\n", "test line 1: the token is shorter than 16 characters"),
        ("read \(readToken)\nadmin ab€cdefghijklmnopq\n", "test line 2: a token may hold only"),
        ("read, \(readToken)\n", "test line 1: unknown role ``"),
    ])
    func aMalformedLineIsAnErrorNamingItAndNotTheToken(_ text: String, _ message: String) {
        do {
            _ = try AccessTokens(parsing: text, source: "test")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.description.hasPrefix(message), "\(error.description)")
            for token in [Self.readToken, Self.adminToken, "shorttoken123", "ab€cdefghijklmnopq"] {
                #expect(!error.description.contains(token))
            }
        }
    }

    @Test func constantTimeEqualIsEquality() {
        let secret = Array("abcdefghijklmnopqrst".utf8)
        #expect(AccessTokens.constantTimeEqual(secret, secret) == 1)
        #expect(AccessTokens.constantTimeEqual(Array("abcdefghijklmnopqrsu".utf8), secret) == 0)
        #expect(AccessTokens.constantTimeEqual(Array("bbcdefghijklmnopqrst".utf8), secret) == 0)
        #expect(AccessTokens.constantTimeEqual(Array("abcdefghijklmnopqrs".utf8), secret) == 0)
        #expect(AccessTokens.constantTimeEqual(Array("abcdefghijklmnopqrsta".utf8), secret) == 0)
        // The secret repeated: equal bytes at every `i % count`, but another length.
        #expect(AccessTokens.constantTimeEqual(secret + secret, secret) == 0)
        #expect(AccessTokens.constantTimeEqual([], secret) == 0)
        #expect(AccessTokens.constantTimeEqual([], []) == 1)
    }

    @Test func theBearerSchemeIsReadInAnyCase() {
        #expect(AccessControl.bearerToken("Bearer abc") == "abc")
        #expect(AccessControl.bearerToken("bearer  abc ") == "abc")
        #expect(AccessControl.bearerToken("BEARER abc") == "abc")
        #expect(AccessControl.bearerToken("Basic abc") == nil)
        #expect(AccessControl.bearerToken("Bearer ") == nil)
        #expect(AccessControl.bearerToken("Bearerabc") == nil)
    }

    @Test func aServerOffLoopbackNeedsTokensOrInsecure() throws {
        for host in ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"] {
            #expect(AccessControl.isLoopback(host), "\(host)")
            try AccessControl.checkExposure(host: host, hasTokens: false, insecure: false)
        }
        for host in ["0.0.0.0", "10.0.0.1", "::", "example.com", "128.0.0.1", "127.0.0.1.example.com"] {
            #expect(!AccessControl.isLoopback(host), "\(host)")
            #expect(throws: AccessTokensError.self) { try AccessControl.checkExposure(host: host, hasTokens: false, insecure: false) }
            try AccessControl.checkExposure(host: host, hasTokens: true, insecure: false)
            try AccessControl.checkExposure(host: host, hasTokens: false, insecure: true)
        }
    }

    // MARK: Over HTTP

    /// A request and the role it needs; `status` is its answer with a token that has the role.
    struct Call: Sendable, CustomStringConvertible {
        let method: HTTPRequest.Method
        let uri: String
        let body: String?
        let role: AccessRole?
        let status: Int
        var description: String { "\(method) \(uri)" }
    }

    static let calls: [Call] = [
        Call(method: .get, uri: "/v1/models/demo/users/u1/predict?item=i1", body: nil, role: .read, status: 200),
        Call(method: .post, uri: "/v1/models/demo/users/u1/topk", body: #"{"k":2}"#, role: .read, status: 200),
        Call(method: .post, uri: "/v1/models/demo/users/u1/observe", body: #"{"item":"i1","label":1}"#, role: .write, status: 200),
        Call(method: .get, uri: "/v1/models/demo", body: nil, role: .read, status: 200),
        Call(method: .get, uri: "/v1/models", body: nil, role: .read, status: 200),
        Call(method: .get, uri: "/v1/models/demo/users/u1", body: nil, role: .read, status: 200),
        Call(method: .post, uri: "/v1/models/demo/observations", body: #"{"observations":[{"uid":"u2","item":"i1","label":2}]}"#,
             role: .write, status: 200),
        Call(method: .post, uri: "/v1/models", body: #"{"name":"news","dimension":4}"#, role: .admin, status: 201),
        Call(method: .get, uri: "/v1/models/demo/jobs/999", body: nil, role: .admin, status: 404),
        Call(method: .put, uri: "/v1/models/demo/exploration", body: #"{"policy":"greedy"}"#, role: .admin, status: 200),
        Call(method: .delete, uri: "/v1/models/demo/challenger", body: nil, role: .admin, status: 409),
        Call(method: .delete, uri: "/v1/models/demo/users/u9", body: nil, role: .admin, status: 200),
        Call(method: .get, uri: "/metrics", body: nil, role: .read, status: 200),
        Call(method: .get, uri: "/healthz", body: nil, role: nil, status: 200),
        Call(method: .get, uri: "/openapi.yaml", body: nil, role: nil, status: 200),
    ]

    /// (Authorization header, the roles it grants; nil: it is no known token).
    static let callers: [(String?, Set<AccessRole>?)] = [
        (nil, nil), ("Bearer unknown-token-0123456789", nil), ("Basic \(adminToken)", nil),
        ("Bearer \(readToken)", [.read]), ("Bearer \(writeToken)", [.read, .write]),
        ("bearer \(readWriteToken)", [.read, .write]), ("Bearer \(adminToken)", [.read, .write, .admin]),
    ]

    struct Answer: Equatable {
        let status: Int
        let code: String?
        let challenge: String?
    }

    static func answer(_ client: any TestClientProtocol, _ call: Call, _ authorization: String?) async throws -> Answer {
        var headers: HTTPFields = [:]
        if let authorization { headers[.authorization] = authorization }
        return try await client.execute(uri: call.uri, method: call.method, headers: headers, body: call.body.map { ByteBuffer(string: $0) }) { r in
            let json = (try? JSONSerialization.jsonObject(with: Data(r.body.readableBytesView))) as? [String: Any]
            return Answer(status: Int(r.status.code), code: (json?["error"] as? [String: Any])?["code"] as? String,
                          challenge: r.headers[.wwwAuthenticate])
        }
    }

    /// What `call` should get from `caller`.
    static func expected(_ call: Call, _ grants: Set<AccessRole>?) -> (status: Int, code: String?) {
        guard let role = call.role else { return (call.status, nil) }
        guard let grants else { return (401, "unauthorized") }
        return grants.contains(role) ? (call.status, nil) : (403, "forbidden")
    }

    static func check(_ client: any TestClientProtocol, _ call: Call, _ caller: (String?, Set<AccessRole>?)) async throws -> Answer {
        let a = try await answer(client, call, caller.0)
        let (status, code) = expected(call, caller.1)
        #expect(a.status == status, "\(call) with \(caller.0 ?? "no token"): \(a)")
        if let code { #expect(a.code == code, "\(call) with \(caller.0 ?? "no token")") }
        #expect((a.challenge == "Bearer") == (a.status == 401), "\(call): WWW-Authenticate \(a.challenge ?? "-")")
        return a
    }

    @Test func theRouterChecksEveryEndpointsRole() async throws {
        try await APITests().withApp(access: .init(tokens: Self.tokens)) { client, _ in
            for caller in Self.callers {
                for call in Self.calls { _ = try await Self.check(client, call, caller) }
            }
            // The 403 names the role; no answer repeats the token.
            let headers: HTTPFields = [.authorization: "Bearer \(Self.readToken)"]
            let message = try await client.execute(uri: "/v1/models/demo/retrain", method: .post, headers: headers) { String(buffer: $0.body) }
            #expect(message.contains("`admin`") && !message.contains(Self.readToken))
            let metrics = try await client.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(Self.adminToken)"]) {
                String(buffer: $0.body)
            }
            #expect(!metrics.contains(Self.adminToken) && !metrics.contains(Self.readToken))
            #expect(metrics.contains(#"osprey_http_requests_total{route="predict",status="401"} 3"#))
        }
    }

    @Test func withoutTokensEverythingIsOpen() async throws {
        try await APITests().withApp { client, _ in
            for call in Self.calls {
                let a = try await Self.answer(client, call, nil)
                #expect(a.status == call.status, "\(call)")
            }
        }
    }

    @Test func probesCanBeOpenedOrClosed() async throws {
        try await APITests().withApp(access: .init(tokens: Self.tokens, openMetrics: true, openHealth: false)) { client, _ in
            let metrics = try await client.execute(uri: "/metrics", method: .get).status
            let health = try await client.execute(uri: "/healthz", method: .get).status
            let healthWithToken = try await client.execute(uri: "/healthz", method: .get, headers: [.authorization: "Bearer \(Self.readToken)"]).status
            #expect(metrics == .ok && health == .unauthorized && healthWithToken == .ok)
        }
    }

    @Test func theFastPathChecksAsTheRouterDoes() async throws {
        try await FastPathTests().withServers(access: .init(tokens: Self.tokens)) { fast, routed, _ in
            func fastPathCount() async throws -> Int {
                try await fast.execute(uri: "/metrics", method: .get, headers: [.authorization: "Bearer \(Self.adminToken)"]) { r in
                    let line = String(buffer: r.body).split(separator: "\n").first { $0.hasPrefix("osprey_http_fast_path_requests_total ") }
                    return line.flatMap { Int($0.split(separator: " ")[1]) } ?? -1
                }
            }
            let onFastPath = Self.calls.filter { $0.uri.hasSuffix("predict?item=i1") || $0.uri.hasSuffix("/topk") || $0.uri.hasSuffix("/observe") }
            #expect(onFastPath.count == 3)
            let before = try await fastPathCount()
            for caller in Self.callers {
                for call in onFastPath {
                    let a = try await Self.check(fast, call, caller), b = try await Self.check(routed, call, caller)
                    #expect(a == b, "\(call) with \(caller.0 ?? "no token")")
                }
            }
            // The fast path answered every one of them, the 401s and 403s too.
            #expect(try await fastPathCount() - before == Self.callers.count * onFastPath.count)
        }
    }
}
