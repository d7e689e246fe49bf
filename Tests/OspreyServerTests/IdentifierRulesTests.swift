import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// Every endpoint holds uids and item ids to the same rules (``InputRules``, the ingestor's):
/// not empty, no NUL, at most 256 characters; a path segment that is not percent-encoded UTF-8 is
/// refused too. The fast path answers as the router does, and nothing is logged.
struct IdentifierRulesTests {
    static let long = String(repeating: "x", count: 257), longest = String(repeating: "x", count: 256)

    @Test func everyEndpointRefusesTheSameIds() async throws {
        try await FastPathTests().withServers { fast, routed, t in
            let uid = t.ratings[0].uid
            let many = String(repeating: #""i1","#, count: 300)
            // (method, path, body, status, message); the predict, topk and observe ones on both paths.
            let requests: [(HTTPRequest.Method, String, String?, Int, String?)] = [
                (.get, "/v1/models/demo/users/a%00b/predict?item=i1", nil, 400, "uid must not contain NUL (U+0000)"),
                (.get, "/v1/models/demo/users/%00/predict?item=i1", nil, 400, "uid must not contain NUL (U+0000)"),
                (.get, "/v1/models/demo/users/\(Self.long)/predict?item=i1", nil, 400, "uid must be at most 256 characters long"),
                (.get, "/v1/models/demo/users/\(Self.longest)/predict?item=i1", nil, 200, nil),
                (.get, "/v1/models/demo/users/\(uid)/predict?item=i%001", nil, 400, "item must not contain NUL (U+0000)"),
                (.get, "/v1/models/demo/users/\(uid)/predict?item=", nil, 400, "item must not be empty"),
                (.get, "/v1/models/demo/users/\(uid)/predict?item=\(Self.long)", nil, 400, "item must be at most 256 characters long"),
                (.get, "/v1/models/demo/users/%FF/predict?item=i1", nil, 400, "uid `%FF` in the path is not percent-encoded UTF-8 text"),
                (.get, "/v1/models/demo/users/50%/predict?item=i1", nil, 400, "uid `50%` in the path is not percent-encoded UTF-8 text"),
                (.get, "/v1/models/demo/users/50%25/predict?item=i1", nil, 200, nil),
                (.post, "/v1/models/demo/users/a%00b/topk", #"{"k":2}"#, 400, "uid must not contain NUL (U+0000)"),
                (.post, "/v1/models/demo/users/\(Self.long)/topk", #"{"k":2,"items":["i1"]}"#, 400, "uid must be at most 256 characters long"),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["i1",""]}"#, 400, "items.1 must not be empty"),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["i1\u0000"]}"#, 400, "items.0 must not contain NUL (U+0000)"),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["\#(Self.long)"]}"#, 400, "items.0 must be at most 256 characters long"),
                // A long list, scored on the scan pool: checked there all the same.
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":[\#(many)""]}"#, 400, "items.300 must not be empty"),
                (.post, "/v1/models/demo/users/\(uid)/topk", #"{"k":2,"items":["i1","i2"],"exclude":[""]}"#, 200, nil),
                (.post, "/v1/models/demo/users/a%00b/observe", #"{"item":"i1","label":1}"#, 400, "uid must not contain NUL (U+0000)"),
                (.post, "/v1/models/demo/users/\(Self.long)/observe", #"{"item":"i1","label":1}"#, 400, "uid must be at most 256 characters long"),
                (.post, "/v1/models/demo/users/%FF/observe", #"{"item":"i1","label":1}"#, 400, "uid `%FF` in the path is not percent-encoded UTF-8 text"),
                (.get, "/v1/models/demo/users/a%00b", nil, 400, "uid must not contain NUL (U+0000)"),
                (.get, "/v1/models/demo/users/\(Self.long)", nil, 400, "uid must be at most 256 characters long"),
                (.get, "/v1/models/demo/users/\(Self.longest)", nil, 200, nil),
                (.get, "/v1/models/demo/users/%FF", nil, 400, "uid `%FF` in the path is not percent-encoded UTF-8 text"),
            ]
            for (method, uri, body, status, message) in requests {
                let a = try await FastPathTests().answer(fast, method, uri, body)
                let b = try await FastPathTests().answer(routed, method, uri, body)
                #expect(a == b, "\(method) \(uri)")
                #expect(a.status == status, "\(method) \(uri): \(a)")
                if let message {
                    let code: String = message.contains("percent-encoded") ? "bad_request" : "invalid_argument"
                    let expected: String = #"{"error":{"code":""# + code + #"","message":""# + message + #""}}"#
                    #expect(a.body == expected, "\(method) \(uri): \(a)")
                }
            }
            #expect(try t.reopen().log.observationCount(model: "demo") == 0)
        }
    }
}
