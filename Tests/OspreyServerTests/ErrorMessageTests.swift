import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// A body that breaks its schema is answered in the API's own words: the field (its path in the
/// body) and the type openapi.yaml gives it, never `JSONDecoder`'s account of itself. The fast
/// path's answers are the router's (its direct reader hands every such body to `JSONDecoder`).
struct ErrorMessageTests {
    @Test func theFastPathAndTheRouterNameTheFieldAndItsType() async throws {
        try await FastPathTests().withServers { fast, routed, t in
            let uid = t.ratings[0].uid
            let topk = "/v1/models/demo/users/\(uid)/topk", observe = "/v1/models/demo/users/message-user/observe"
            let requests: [(String, String, String)] = [
                (topk, #"{"k": 2.5}"#, "k must be an integer"),
                (topk, #"{"k":"2"}"#, "k must be an integer"),
                (topk, #"{"k":[2]}"#, "k must be an integer"),
                (topk, #"{"k":null}"#, "k must be an integer, not null"),
                (topk, #"{"k":99999999999999999999}"#, "k must be an integer from -9223372036854775808 to 9223372036854775807"),
                (topk, #"[{"k":2}]"#, "the body must be a JSON object"),
                (topk, #""k""#, "the body must be a JSON object"),
                (topk, "null", "the body must be a JSON object, not null"),
                (topk, #"{"k":2"#, "the body is not valid JSON"),
                (topk, #"{"items":"i1"}"#, "items must be an array of ids (strings or integers)"),
                (topk, #"{"items":["i1",true]}"#, "items.1 must be a string or an integer"),
                (topk, #"{"items":[null]}"#, "items.0 must be a string or an integer, not null"),
                (topk, #"{"items":[1.5]}"#, "items.0 must be a string or an integer"),
                (topk, #"{"items":[9223372036854775808]}"#, "items.0 must be a string or an integer from -9223372036854775808 to 9223372036854775807"),
                (topk, #"{"exclude":{"i1":true}}"#, "exclude must be an array of ids (strings or integers)"),
                (topk, #"{"explore":"false"}"#, "explore must be true or false"),
                (topk, #"{"exclude_observed":1}"#, "exclude_observed must be true or false"),
                (observe, #"{"item":"i1","label":"5"}"#, "label must be a number"),
                (observe, #"{"item":"i1","label":true}"#, "label must be a number"),
                (observe, #"{"item":"i1","label":null}"#, "label must be a number, not null"),
                (observe, #"{"item":"i1","label":1e400}"#, "label must be a number a 64-bit float can hold"),
                (observe, #"{"item":"i1"}"#, "label is missing: it must be a number"),
                (observe, #"{"label":1}"#, "item is missing: it must be a string or an integer"),
                (observe, #"{"item":["i1"],"label":1}"#, "item must be a string or an integer"),
                (observe, #"{"item":"i1","label":1,"event_id":5}"#, "event_id must be a string"),
                (observe, #"[{"item":"i1","label":1}]"#, "the body must be a JSON object"),
                (observe, #"{"item":"i1","label":1,"rating":2}"#, "unknown field `rating` (the fields are item, label, event_id, observation_id)"),
            ]
            for (uri, body, message) in requests {
                let a = try await FastPathTests().answer(fast, .post, uri, body)
                let b = try await FastPathTests().answer(routed, .post, uri, body)
                #expect(a == b, "\(uri) \(body)")
                let expected: String = #"{"error":{"code":"bad_request","message":""# + message + #""}}"#
                #expect(a.status == 400 && a.body == expected, "\(uri) \(body): \(a)")
            }
            #expect(try t.reopen().log.observationCount(model: "demo") == 0)
        }
    }
}
