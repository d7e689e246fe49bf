import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// `POST /v1/models` through the router: an empty model is created, served and listed; bad
/// bodies get a 400 naming the field, a taken name a 409, and nothing is created by either.
struct ModelAPITests {
    @Test func anEmptyModelIsCreatedServedAndListed() async throws {
        try await ItemAPITests().withApp { client, _ in
            let body = #"{"name":"news","dimension":8,"mean":3.5,"lambda":2,"numeric":{"year":{"mean":2000,"deviation":10}},"exploration":"linucb(1.0)"}"#
            try await client.execute(uri: "/v1/models", method: .post, body: ByteBuffer(string: body)) { r in
                let model = ItemAPITests().json(r.body)
                #expect(r.status == .created && model["name"] as? String == "news" && model["version"] as? Int == 1)
                #expect(model["dimension"] as? Int == 8 && model["users"] as? Int == 0 && model["exploration"] as? String == "linucb(1.0)")
                let v = (model["versions"] as? [[String: Any]])?.first
                #expect(v?["trigger"] as? String == "create" && v?["lambda"] as? Double == 2 && v?["training_rmse"] is NSNull)
            }
            try await client.execute(uri: "/v1/models/news/items/a1", method: .put,
                                     body: ByteBuffer(string: #"{"attributes":{"genres":["Drama"],"year":2001}}"#)) { r in
                #expect(r.status == .ok && ItemAPITests().json(r.body)["source"] as? String == "attributes")
            }
            try await client.execute(uri: "/v1/models/news/users/u1/predict?item=a1", method: .get) { r in
                #expect(r.status == .ok && ItemAPITests().json(r.body)["score"] as? Double == 3.5)
            }
            try await client.execute(uri: "/v1/models/news/users/u1/observe", method: .post,
                                     body: ByteBuffer(string: #"{"item":"a1","label":5}"#)) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/models/news/users/u1/predict?item=a1", method: .get) { r in
                #expect(r.status == .ok && (ItemAPITests().json(r.body)["score"] as? Double ?? 0) > 3.5)
            }
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let names = (ItemAPITests().json(r.body)["models"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(names == ["demo", "news"])
            }
        }
    }

    static let refused: [(body: String, status: Int, text: String)] = [
        (#"{"dimension":4}"#, 400, "name is missing"),
        (#"{"name":"x"}"#, 400, "dimension is missing"),
        (#"{"name":"x","dimension":"4"}"#, 400, "dimension must be an integer"),
        (#"{"name":"x","dimension":4,"dims":4}"#, 400, "unknown field `dims`"),
        (#"{"name":"x","dimension":0}"#, 400, "dimension must be between 1 and 512"),
        (#"{"name":"x","dimension":4,"lambda":-1}"#, 400, "lambda must be a number from 1e-06 to 1e+06"),
        (#"{"name":"x","dimension":4,"lambda":1e300}"#, 400, "lambda must be a number from 1e-06 to 1e+06"),
        (#"{"name":"x","dimension":4,"mean":1e7}"#, 400, "mean"),
        (#"{"name":"x","dimension":4,"numeric":null}"#, 400, "numeric must be an object, not null"),
        (#"{"name":"x","dimension":4,"numeric":[1]}"#, 400, "numeric must be an object"),
        (#"{"name":"x","dimension":4,"numeric":{"year":{"mean":1}}}"#, 400, "numeric.year.deviation is missing"),
        (#"{"name":"x","dimension":4,"numeric":{"year":{"mean":1,"deviation":0}}}"#, 400, "numeric.year"),
        (#"{"name":"x","dimension":4,"exploration":"sometimes"}"#, 400, "unknown exploration policy"),
        (#"{"name":"a/b","dimension":4}"#, 400, "name must be"),
        (#"{"name":"demo","dimension":4}"#, 409, "exists already"),
    ]

    @Test func badBodiesAndTakenNamesAreRefusedAndCreateNothing() async throws {
        try await ItemAPITests().withApp { client, _ in
            for (body, status, text) in Self.refused {
                try await client.execute(uri: "/v1/models", method: .post, body: ByteBuffer(string: body)) { r in
                    let e = ItemAPITests().error(r.body)
                    #expect(Int(r.status.code) == status && e.message.contains(text), "\(body): \(r.status) \(e.message)")
                }
            }
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let names = (ItemAPITests().json(r.body)["models"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
                #expect(names == ["demo"])
            }
        }
    }
}
