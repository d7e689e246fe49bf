import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// The item endpoints through the router: write, read, hide, show, bulk, and every bad input
/// answered with a 400 naming the field and storing nothing.
struct ItemAPITests {
    func withApp(_ body: @escaping @Sendable (any TestClientProtocol, TrainedStore) async throws -> Void) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let app = buildApplication(manager: manager, configuration: .init(), logger: quiet)
        try await app.test(.router) { client in try await body(client, t) }
    }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
    }

    func error(_ buffer: ByteBuffer) -> (code: String?, message: String) {
        let e = json(buffer)["error"] as? [String: Any]
        return (e?["code"] as? String, e?["message"] as? String ?? "")
    }

    @Test func anItemIsWrittenReadScoredHiddenAndShown() async throws {
        try await withApp { client, _ in
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=new1", method: .get) { r in
                #expect(r.status == .notFound && error(r.body).code == "unknown_item")
            }
            let body = #"{"attributes":{"title":"The Long Night","genres":["Drama","War"],"year":2001}}"#
            try await client.execute(uri: "/v1/models/demo/items/new1", method: .put, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .ok)
                let item = json(r.body)
                #expect(item["item"] as? String == "new1" && item["hidden"] as? Bool == false)
                // The fixture's version has no attribute map: a new item is the mean item.
                #expect(item["source"] as? String == "mean" && item["version"] as? Int == 1)
                let attributes = item["attributes"] as? [String: Any]
                #expect(attributes?["genres"] as? [String] == ["Drama", "War"] && attributes?["year"] as? Double == 2001)
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=new1", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/models/demo/items/i1", method: .get) { r in
                #expect(r.status == .ok && json(r.body)["source"] as? String == "trained")
            }
            try await client.execute(uri: "/v1/models/demo/items/i1/hide", method: .post) { r in
                #expect(r.status == .ok && json(r.body)["hidden"] as? Bool == true)
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/topk", method: .post, body: ByteBuffer(string: #"{"k":100}"#)) { r in
                let items = (json(r.body)["items"] as? [[String: Any]])?.compactMap { $0["item"] as? String } ?? []
                #expect(r.status == .ok && !items.contains("i1") && items.contains("new1"))
            }
            try await client.execute(uri: "/v1/models/demo/items/i1/show", method: .post) { r in
                #expect(r.status == .ok && json(r.body)["hidden"] as? Bool == false)
            }
            try await client.execute(uri: "/v1/models/demo/items/nope/hide", method: .post) { r in
                #expect(r.status == .notFound && error(r.body).code == "unknown_item")
            }
            try await client.execute(uri: "/v1/models/nope/items/x", method: .put, body: ByteBuffer(string: #"{"attributes":{}}"#)) { r in
                #expect(r.status == .notFound && error(r.body).code == "unknown_model")
            }
        }
    }

    @Test func itemsAreWrittenInBulkAllOrNothing() async throws {
        try await withApp { client, t in
            let good = #"{"items":[{"id":"a","attributes":{"k":"v"}},{"id":17,"attributes":{"n":3}}]}"#
            try await client.execute(uri: "/v1/models/demo/items", method: .post, body: ByteBuffer(string: good)) { r in
                #expect(r.status == .ok && json(r.body)["accepted"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/models/demo/items/17", method: .get) { r in
                #expect(r.status == .ok && (json(r.body)["attributes"] as? [String: Any])?["n"] as? Double == 3)
            }
            let long = String(repeating: "x", count: 1025)
            let bad = #"{"items":[{"id":"b","attributes":{}},{"id":"c","attributes":{"title":"\#(long)"}}]}"#
            try await client.execute(uri: "/v1/models/demo/items", method: .post, body: ByteBuffer(string: bad)) { r in
                #expect(r.status == .badRequest && error(r.body).message.hasPrefix("items.1.attributes.title must be at most 1024"))
            }
            #expect(try t.stores.versions.catalogueItem(model: "demo", id: "b") == nil, "nothing from a rejected request")
            try await client.execute(uri: "/v1/models/demo/items", method: .post, body: ByteBuffer(string: #"{"items":[]}"#)) { r in
                #expect(r.status == .badRequest && error(r.body).code == "invalid_argument")
            }
        }
    }

    @Test(arguments: [
        (#"{"attributes":[1,2]}"#, "attributes must be an object"),
        (#"{"attributes":{"a":{"b":1}}}"#, "attributes.a must be a string, a number or an array of strings"),
        (#"{"attributes":{"a":null}}"#, "attributes.a must be a string, a number or an array of strings, not null"),
        (#"{"attributes":{"a":["x",2]}}"#, "attributes.a.1 must be a string"),
        (#"{"attributes":{"a":true}}"#, "attributes.a must be a string, a number or an array of strings"),
        (#"{"attributes":{"a":1e400}}"#, "attributes.a must be a string, a number or an array of strings"),
        (#"{"attrs":{}}"#, "unknown field `attrs`"),
        (#"{}"#, "attributes is missing"),
        (#"{"attributes":{"a":"x\u0000"}}"#, "attributes.a must not contain NUL"),
    ])
    func badItemsAreRefusedNamingTheField(body: String, message: String) async throws {
        try await withApp { client, t in
            try await client.execute(uri: "/v1/models/demo/items/x", method: .put, body: ByteBuffer(string: body)) { r in
                #expect(r.status == .badRequest, "\(body)")
                #expect(error(r.body).message.hasPrefix(message), "\(body): \(error(r.body).message)")
            }
            #expect(try t.stores.versions.catalogueItem(model: "demo", id: "x") == nil)
        }
    }

    @Test func tooManyAttributesAreRefused() async throws {
        try await withApp { client, _ in
            let many = (0..<65).map { #""a\#($0)":1"# }.joined(separator: ",")
            try await client.execute(uri: "/v1/models/demo/items/x", method: .put, body: ByteBuffer(string: #"{"attributes":{\#(many)}}"#)) { r in
                #expect(r.status == .badRequest && error(r.body).message == "attributes has 65 attributes; at most 64 are allowed")
            }
        }
    }
}

/// Inline items: attributes in a predict or topk request for items the model does not hold,
/// scored and not stored.
struct InlineItemTests {
    @Test func inlineItemsAreScoredRankedAndNotStored() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let app = buildApplication(manager: manager, configuration: .init(), logger: quiet)
        let api = ItemAPITests()
        try await app.test(.router) { client in
            // The same attributes inline and written give the same score.
            let attributes = #"{"genres":["Drama"],"year":2001}"#
            var inlineScore: Double?
            try await client.execute(uri: "/v1/models/demo/users/u1/predict", method: .post,
                                     body: ByteBuffer(string: #"{"item":"draft","attributes":\#(attributes)}"#)) { r in
                #expect(r.status == .ok)
                inlineScore = api.json(r.body)["score"] as? Double
            }
            try await client.execute(uri: "/v1/models/demo/items/draft", method: .get) { r in
                #expect(r.status == .notFound, "an inline item is not stored")
            }
            // Ranked among the whole catalogue: with k above its size, it is in the answer at its score.
            try await client.execute(uri: "/v1/models/demo/users/u1/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":1000,"inline_items":[{"id":"draft","attributes":\#(attributes)}]}"#)) { r in
                let items = api.json(r.body)["items"] as? [[String: Any]] ?? []
                let scores = items.compactMap { $0["score"] as? Double }
                #expect(r.status == .ok && items.contains { $0["item"] as? String == "draft" && $0["score"] as? Double == inlineScore })
                #expect(scores == scores.sorted(by: >), "best first")
            }
            try await client.execute(uri: "/v1/models/demo/items/draft", method: .put, body: ByteBuffer(string: #"{"attributes":\#(attributes)}"#)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=draft", method: .get) { r in
                #expect(api.json(r.body)["score"] as? Double == inlineScore)
            }
            // A known item given inline is scored as the model holds it.
            var held: Double?
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=i1", method: .get) { r in held = api.json(r.body)["score"] as? Double }
            try await client.execute(uri: "/v1/models/demo/users/u1/predict", method: .post,
                                     body: ByteBuffer(string: #"{"item":"i1","attributes":{"year":1900}}"#)) { r in
                #expect(api.json(r.body)["score"] as? Double == held)
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":3,"inline_items":[{"id":"x","attributes":{"a":{"b":1}}}]}"#)) { r in
                #expect(r.status == .badRequest && api.error(r.body).message.hasPrefix("inline_items.0.attributes.a must be"))
            }
            try await client.execute(uri: "/v1/models/demo/exploration", method: .put, body: ByteBuffer(string: #"{"policy":"linucb(1.0)"}"#)) { _ in }
            // With an exploring policy, an answer with inline items is the greedy one.
            var greedy: [String] = []
            try await client.execute(uri: "/v1/models/demo/users/u1/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":3,"explore":false,"inline_items":[{"id":"y","attributes":{}}]}"#)) { r in
                #expect(r.status == .ok)
                greedy = (api.json(r.body)["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":3,"inline_items":[{"id":"y","attributes":{}}]}"#)) { r in
                #expect(r.status == .ok)
                #expect((api.json(r.body)["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String } == greedy)
            }
            #expect(greedy.count == 3)
        }
    }
}
