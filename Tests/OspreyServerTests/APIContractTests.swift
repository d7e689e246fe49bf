import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// Where openapi.yaml and the server must agree beyond what scripts/contract-test.sh (schemathesis
/// against a live server) can sample: wrong methods, the exact patterns and bounds the schema
/// states, and the error codes of strictly read bodies.
struct APIContractTests {
    func withApp(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        try await buildApplication(manager: manager, logger: quiet).test(.router) { try await body($0) }
    }

    static func errorCode(_ buffer: ByteBuffer) -> String? {
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
        return (json?["error"] as? [String: Any])?["code"] as? String
    }

    static func errorMessage(_ buffer: ByteBuffer) -> String? {
        let json = (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any]
        return (json?["error"] as? [String: Any])?["message"] as? String
    }

    // MARK: Methods

    /// A known path with a method it does not have: 405, `Allow` naming the methods it has, and
    /// the JSON error body; an unknown path stays a 404.
    @Test(arguments: [
        ("TRACE", "/healthz", "GET"),
        ("HEAD", "/healthz", "GET"),
        ("POST", "/metrics", "GET"),
        ("PUT", "/openapi.yaml", "GET"),
        ("DELETE", "/v1/models", "GET, POST"),
        ("POST", "/v1/models/demo", "GET"),
        ("PATCH", "/v1/models/nope", "GET"),
        ("POST", "/v1/models/demo/users/u1", "GET, DELETE"),
        ("DELETE", "/v1/models/demo/users/u1/predict?item=i1", "GET, POST"),
        ("GET", "/v1/models/demo/users/u1/topk", "POST"),
        ("PUT", "/v1/models/demo/users/u1/observe", "POST"),
        ("GET", "/v1/models/demo/observations", "POST"),
        ("GET", "/v1/models/demo/retrain", "POST"),
        ("POST", "/v1/models/demo/jobs/1", "GET"),
        ("GET", "/v1/models/demo/jobs/x/cancel", "POST"),
        ("GET", "/v1/models/demo/rollback", "POST"),
        ("POST", "/v1/models/demo/exploration", "PUT"),
        ("OPTIONS", "/v1/models/demo/challenger", "POST, DELETE"),
        ("PUT", "/v1/models/demo/challenger", "POST, DELETE"),
        ("GET", "/v1/models/demo/promote", "POST"),
        ("GET", "/v1/models/demo/evaluate-policy", "POST"),
        ("TRACE", "/v1/models/demo/users/a%2Fb/observe/", "POST"),
    ])
    func aWrongMethodIs405(_ method: String, _ uri: String, _ allow: String) async throws {
        try await withApp { client in
            try await client.execute(uri: uri, method: HTTPRequest.Method(method)!) { r in
                #expect(r.status == .methodNotAllowed, "\(method) \(uri)")
                #expect(r.headers[.allow] == allow, "\(method) \(uri)")
                #expect(r.headers[.contentType] == "application/json")
                if method != "HEAD" { #expect(Self.errorCode(r.body) == "method_not_allowed", "\(method) \(uri)") }
            }
        }
    }

    @Test(arguments: [
        ("GET", "/nothing"), ("TRACE", "/nothing"), ("GET", "/v1/models/demo/users"), ("POST", "/v1/models/demo/users/u1/rate"),
        ("GET", "/v1/models/demo/jobs/1/cancel/now"), ("GET", "/v2/models"),
    ])
    func anUnknownPathIs404(_ method: String, _ uri: String) async throws {
        try await withApp { client in
            try await client.execute(uri: uri, method: HTTPRequest.Method(method)!) { r in
                #expect(r.status == .notFound && r.headers[.allow] == nil, "\(method) \(uri)")
                #expect(Self.errorCode(r.body) == "not_found", "\(method) \(uri)")
            }
        }
    }

    /// The fast path leaves wrong methods to the router, so a live server answers them as the
    /// router alone does, `Allow` included.
    @Test func theFastPathAnswersWrongMethodsAsTheRouterDoes() async throws {
        try await FastPathTests().withServers { fast, routed, _ in
            for (method, uri) in [("GET", "/v1/models/demo/users/u1/topk"), ("PUT", "/v1/models/demo/users/u1/observe"),
                                  ("PUT", "/v1/models/demo/users/u1/predict?item=i1"), ("TRACE", "/v1/models/demo/users/u1/predict")] {
                func answer(_ client: any TestClientProtocol) async throws -> String {
                    try await client.execute(uri: uri, method: HTTPRequest.Method(method)!, body: ByteBuffer(string: "{}")) { r in
                        "\(r.status.code) \(r.headers[.allow] ?? "-") \(String(buffer: r.body))"
                    }
                }
                let a = try await answer(fast), b = try await answer(routed)
                #expect(a == b, "\(method) \(uri)")
                #expect(a.hasPrefix("405 "), "\(method) \(uri): \(a)")
            }
        }
    }

    // MARK: Bodies

    /// Each way a body can break its schema, with its code and its message, which names the field
    /// and what it must be in the API's words; the same on every endpoint.
    @Test(arguments: [
        ("/v1/models/demo/users/u1/topk", #"{"k":2,"explore":null}"#, "bad_request", "explore must be true or false, not null"),
        ("/v1/models/demo/users/u1/topk", #"{"k":2,"exclude_observd":true}"#, "bad_request", "unknown field `exclude_observd`"),
        ("/v1/models/demo/users/u1/topk", #"{"k":2,"k":3}"#, "bad_request", "`k` appears twice"),
        ("/v1/models/demo/users/u1/topk", #"{"k":2.5}"#, "bad_request", "k must be an integer"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"i1","label":1,"event_id":null}"#, "bad_request", "event_id must be a string, not null"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"i1","label":1,"event_id":""}"#, "invalid_argument", "event_id must not be empty"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"i1","label":3.4028235e38}"#, "invalid_argument", "label must be a number from -1000000 to 1000000"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"i1","label":1e400}"#, "bad_request", "label must be a number a 64-bit float can hold"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"\#(String(repeating: "é", count: 257))","label":1}"#, "invalid_argument",
         "item must be at most 256 characters long"),
        ("/v1/models/demo/users/u1/observe", #"{"item":"a\u0000b","label":1}"#, "invalid_argument", "item must not contain NUL"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","item":"i1","label":1,"uid":"u2"}]}"#, "bad_request", "`observations.0.uid` appears twice"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","item":"i1","label":1}],"wait":true}"#, "bad_request", "unknown field `wait`"),
        ("/v1/models/demo/observations", #"[{"uid":"u1","item":"i1","label":1}]"#, "bad_request", "the body must be a JSON object"),
        ("/v1/models/demo/observations", #"{"observations":{"uid":"u1"}}"#, "bad_request", "observations must be an array of observations (JSON objects)"),
        ("/v1/models/demo/observations", #"{"observations":[["u1","i1",1]]}"#, "bad_request", "observations.0 must be a JSON object"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","item":"i1","label":1},null]}"#, "bad_request",
         "observations.1 must be a JSON object, not null"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","item":"i1","label":"1"}]}"#, "bad_request", "observations.0.label must be a number"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":2.5,"item":"i1","label":1}]}"#, "bad_request",
         "observations.0.uid must be a string or an integer"),
        ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","label":1}]}"#, "bad_request",
         "observations.0.item is missing: it must be a string or an integer"),
        ("/v1/models/demo/retrain", #"{"wait":false,"challenger":null}"#, "bad_request", "challenger must be a string, not null"),
        ("/v1/models/demo/retrain", #"{"challenger":{"allocation":"thompson"}}"#, "bad_request", "challenger must be a string"),
        ("/v1/models/demo/retrain", #"{"wait":"yes"}"#, "bad_request", "wait must be true or false"),
        ("/v1/models/demo/retrain", #"{"challenger":"split(1)"}"#, "invalid_argument", "split(p)"),
        ("/v1/models/demo/challenger", #"{"version":-5795895321630999279358894407680}"#, "bad_request",
         "version must be an integer from -9223372036854775808 to 9223372036854775807"),
        ("/v1/models/demo/challenger", #"{"version":2,"allocation":"Thompson"}"#, "invalid_argument", "allocation"),
        ("/v1/models/demo/rollback", #"{"version":1,"force":true}"#, "bad_request", "unknown field `force`"),
        ("/v1/models/demo/rollback", #"{"version":"1"}"#, "bad_request", "version must be an integer"),
        ("/v1/models/demo/rollback", #"{"version":1.5}"#, "bad_request", "version must be an integer"),
        ("/v1/models/demo/rollback", #"{}"#, "bad_request", "version is missing: it must be an integer"),
        ("/v1/models/demo/rollback", "[1]", "bad_request", "the body must be a JSON object"),
        ("/v1/models/demo/rollback", "null", "bad_request", "the body must be a JSON object, not null"),
        ("/v1/models/demo/rollback", "{", "bad_request", "the body is not valid JSON"),
        ("/v1/models/demo/evaluate-policy", #"{"policy":"greedy","seed":-1}"#, "bad_request", "seed must be an integer from 0 to 18446744073709551615"),
        ("/v1/models/demo/evaluate-policy", #"{"policy":7}"#, "bad_request", "policy must be a string"),
        ("/v1/models/demo/evaluate-policy", #"{"policy":"greedy","samples":0}"#, "invalid_argument", "samples"),
    ])
    func aBodyThatBreaksItsSchemaIs400(_ uri: String, _ body: String, _ code: String, _ message: String) async throws {
        try await withApp { client in
            try await client.execute(uri: uri, method: .post, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .badRequest, "\(uri) \(body)")
                #expect(Self.errorCode(r.body) == code, "\(uri) \(body): \(String(buffer: r.body))")
                #expect(Self.errorMessage(r.body)?.contains(message) == true, "\(uri) \(body): \(String(buffer: r.body))")
            }
        }
    }

    /// An `event_id` of no decision, or of another user's, names nothing this user can answer.
    @Test func anUnknownEventIs404() async throws {
        try await withApp { client in
            for (uri, body) in [("/v1/models/demo/users/u1/observe", #"{"item":"i1","label":1,"event_id":"nope"}"#),
                                ("/v1/models/demo/observations", #"{"observations":[{"uid":"u1","item":"i1","label":1,"event_id":"nope"}]}"#)] {
                try await client.execute(uri: uri, method: .post, body: ByteBuffer(string: body)) { r in
                    #expect(r.status == .notFound && Self.errorCode(r.body) == "unknown_event", "\(uri)")
                }
            }
        }
    }

    // MARK: What openapi.yaml states

    /// openapi.yaml, and the value of `key` on the first line after the line `anchor` that has it.
    static func schemaValue(after anchor: String, _ key: String) throws -> String {
        let lines = String(buffer: API.openAPIDocument()).split(separator: "\n", omittingEmptySubsequences: false)
        let start = try #require(lines.firstIndex { $0 == anchor }, "no line `\(anchor)` in openapi.yaml")
        let line = try #require(lines[start...].first { $0.trimmingCharacters(in: .whitespaces).hasPrefix(key + ": ") })
        var value = line.trimmingCharacters(in: .whitespaces).dropFirst(key.count + 2)
        if value.hasPrefix("'"), value.hasSuffix("'") { value = value.dropFirst().dropLast() }
        return String(value)
    }

    @Test func theSchemaStatesTheServersPatternsAndBounds() throws {
        #expect(try Self.schemaValue(after: "    Policy:", "pattern") == API.policyPattern)
        #expect(try Self.schemaValue(after: "    Allocation:", "pattern") == API.allocationPattern)
        #expect(Double(try Self.schemaValue(after: "    Label:", "maximum")) == Manager.Configuration().maxAbsLabel)
        #expect(Double(try Self.schemaValue(after: "    Label:", "minimum")) == -Manager.Configuration().maxAbsLabel)
        let length = Manager.Configuration().maxIdentifierLength
        // The ids of bodies, the uid of every path and predict's item query parameter.
        for anchor in ["    Id:", "    EventId:", "    Uid:", "  /v1/models/{model}/users/{uid}/predict:"] {
            #expect(Int(try Self.schemaValue(after: anchor, "maxLength")) == length, "\(anchor)")
            #expect(try Self.schemaValue(after: anchor, "pattern") == #"^[^\x00]*$"#, "\(anchor)")
        }
        #expect(Int(try Self.schemaValue(after: "    JobId:", "maximum")) == Int.max)
        #expect(try Self.schemaValue(after: "    JobId:", "minimum") == String(Int.min))
    }

    /// Every policy the pattern admits is one the server accepts, and the server prints each
    /// policy in a form the pattern admits (so a client may send back what it reads).
    @Test(arguments: [
        "greedy", "epsilon_greedy(0)", "epsilon_greedy(0.0)", "epsilon_greedy(0.25)", "epsilon_greedy(1)", "epsilon_greedy(1.000)",
        "epsilon_greedy(1e-05)", "epsilon_greedy(9.99e-1)", "epsilon_greedy(0e-999)", "epsilon_greedy(9.9999999999999999999e-1)",
        "linucb(0)", "linucb(1.5)", "linucb(1e-05)", "linucb(1e+16)", "linucb(9.5e+99)", "thompson(0.5)", "thompson(2e-3)",
    ])
    func aPolicyThePatternAdmitsIsAccepted(_ text: String) throws {
        #expect(text.wholeMatch(of: API.policyForm) != nil)
        let policy = try API.policy(text)
        #expect(policy.description.wholeMatch(of: API.policyForm) != nil, "\(policy)")
        #expect(try API.policy(policy.description) == policy)
    }

    @Test(arguments: [
        "Greedy", "greedy ", " greedy", "greedy\n", "epsilon_greedy(2)", "epsilon_greedy(1.5)", "epsilon_greedy(1e0)", "epsilon_greedy(-0.1)",
        "epsilon_greedy(.5)", "epsilon_greedy(1.)", "linucb(-1)", "linucb(1e400)", "linucb(01)", "linucb(1E5)", "linucb(inf)", "linucb(nan)",
        "linucb()", "linucb(1,2)", "thompson( 1 )", "thompson(0x10)", "ucb(1)", "",
    ])
    func aPolicyThePatternRefusesIsRefused(_ text: String) {
        #expect(text.wholeMatch(of: API.policyForm) == nil)
        #expect(throws: OspreyError.self) { try API.policy(text) }
    }

    @Test(arguments: [
        "thompson", "split(0.1)", "split(0.5)", "split(0.0000000000000001)", "split(0.9999999999999999)", "split(1e-05)",
        "split(9.999999999999999e-1)", "split(1e-99)", "split(0.10)",
    ])
    func anAllocationThePatternAdmitsIsAccepted(_ text: String) throws {
        #expect(text.wholeMatch(of: API.allocationForm) != nil)
        let allocation = try API.allocation(text)
        #expect(allocation.description.wholeMatch(of: API.allocationForm) != nil, "\(allocation)")
    }

    @Test(arguments: [
        "Thompson", "split(0)", "split(1)", "split(1.0)", "split(0.0)", "split(-0.1)", "split(.5)", "split(0.99999999999999999)",
        "split(1e-100)", "split(5e0)", "split( 0.1 )", "half", "",
    ])
    func anAllocationThePatternRefusesIsRefused(_ text: String) {
        #expect(text.wholeMatch(of: API.allocationForm) == nil)
        #expect(throws: OspreyError.self) { try API.allocation(text) }
    }

    @Test func jobIDs() throws {
        #expect(try API.jobID("12") == 12 && API.jobID("-3") == -3 && API.jobID("007") == 7)
        for bad in ["+1", "", "1.0", "x", "9223372036854775808", " 1"] {
            #expect(throws: APIError.self, "\(bad)") { try API.jobID(bad) }
        }
    }
}

extension APIContractTests {
    /// The responses each operation of openapi.yaml documents, by path and lowercase method,
    /// read line by line from the document the server serves (two-space YAML: paths at 2,
    /// methods at 4, status codes at 8).
    static func documentedStatuses() -> [String: Set<String>] {
        let text = String(buffer: API.openAPIDocument())
        var out: [String: Set<String>] = [:]
        var path: String?, method: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let indent = line.prefix { $0 == " " }.count
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if indent == 0, !trimmed.isEmpty { path = nil; method = nil }
            if indent == 2, trimmed.hasPrefix("/"), trimmed.hasSuffix(":") { path = String(trimmed.dropLast()); method = nil }
            if indent == 4, let p = path, ["get:", "post:", "put:", "delete:"].contains(trimmed) {
                method = "\(p) \(trimmed.dropLast())"
                out[method!] = []
            }
            if indent == 8, let m = method, trimmed.count == 6, trimmed.hasPrefix("'"), trimmed.hasSuffix("':") {
                out[m, default: []].insert(String(trimmed.dropFirst().prefix(3)))
            }
        }
        return out
    }

    /// Every endpoint that needs a token documents 401, and 403 exactly when a token could lack
    /// its role (write and admin: every token may read); the public document documents neither.
    @Test func theRoleTableAndTheDocumentAgreeOn401And403() {
        let documented = Self.documentedStatuses()
        #expect(documented.count == Endpoint.allCases.count, "\(documented.keys.sorted())")
        for endpoint in Endpoint.allCases {
            let key = "\(endpoint.path) \(endpoint.method.rawValue.lowercased())"
            let statuses = documented[key] ?? []
            #expect(statuses.contains("401") == (endpoint.role != nil), "\(key): \(statuses.sorted())")
            #expect(statuses.contains("403") == (endpoint.role.map { $0 > .read } ?? false), "\(key): \(statuses.sorted())")
        }
    }
}
