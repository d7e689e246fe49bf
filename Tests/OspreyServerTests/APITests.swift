import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTesting
import Logging
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

/// The HTTP API through the router, on a small trained model in a fresh directory.
struct APITests {
    func withApp(maxBodyBytes: Int = 1 << 20, access: AccessControl = .init(),
                 _ body: @escaping @Sendable (any TestClientProtocol, TrainedStore) async throws -> Void) async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let app = buildApplication(manager: manager, configuration: .init(maxBodyBytes: maxBodyBytes, access: access), logger: quiet)
        try await app.test(.router) { client in try await body(client, t) }
    }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView))) as? [String: Any] ?? [:]
    }

    func errorCode(_ buffer: ByteBuffer) -> String? {
        (json(buffer)["error"] as? [String: Any])?["code"] as? String
    }

    @Test func deletingAUserErasesItAndIsIdempotent() async throws {
        try await withApp { client, t in
            let uid = t.ratings[0].uid, rated = t.ratings.filter { $0.uid == uid }.count
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/observe", method: .post,
                                     body: ByteBuffer(string: #"{"item":"i1","label":4}"#)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)", method: .delete) { r in
                #expect(r.status == .ok)
                let body = json(r.body), deleted = body["deleted"] as? [String: Any]
                #expect(body["model"] as? String == "demo" && body["uid"] as? String == uid)
                #expect(deleted?["observations"] as? Int == 1 && deleted?["training_ratings"] as? Int == rated)
                #expect(deleted?["decisions"] as? Int == 0 && (deleted?["snapshot_rows"] as? Int ?? -1) >= 1)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)", method: .get) { r in
                #expect(json(r.body)["observations"] as? Int == 0 && json(r.body)["bootstrapped"] as? Bool == true)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)", method: .delete) { r in
                #expect(r.status == .ok)
                let deleted = json(r.body)["deleted"] as? [String: Int]
                #expect(deleted == ["observations": 0, "snapshot_rows": 0, "decisions": 0, "training_ratings": 0])
            }
            try await client.execute(uri: "/v1/models/nope/users/\(uid)", method: .delete) { r in
                #expect(r.status == .notFound && errorCode(r.body) == "unknown_model")
            }
            let tooLong = String(repeating: "u", count: 300)
            try await client.execute(uri: "/v1/models/demo/users/\(tooLong)", method: .delete) { r in
                #expect(r.status == .badRequest && errorCode(r.body) == "invalid_argument")
            }
        }
    }

    @Test func predictObserveAndTopK() async throws {
        try await withApp { client, t in
            let uid = t.ratings[0].uid
            var before = 0.0
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/predict?item=i1", method: .get) { r in
                #expect(r.status == .ok)
                let body = json(r.body)
                #expect(body["uid"] as? String == uid && body["item"] as? String == "i1" && body["version"] as? Int == 1)
                before = body["score"] as? Double ?? .nan
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/observe", method: .post,
                                     body: ByteBuffer(string: #"{"item":"i1","label":\#(before + 2)}"#)) { r in
                #expect(r.status == .ok)
                #expect(json(r.body)["accepted"] as? Bool == true)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/predict?item=i1", method: .get) { r in
                #expect((json(r.body)["score"] as? Double ?? .nan) > before)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post, body: ByteBuffer(string: #"{"k":3}"#)) { r in
                #expect(r.status == .ok)
                let items = json(r.body)["items"] as? [[String: Any]] ?? []
                let scores = items.compactMap { $0["score"] as? Double }
                #expect(items.count == 3 && scores == scores.sorted(by: >))
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":5,"items":["i1","i2"]}"#)) { r in
                #expect((json(r.body)["items"] as? [[String: Any]])?.count == 2)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)", method: .get) { r in
                let body = json(r.body)
                #expect(body["observations"] as? Int == 1 && body["bootstrapped"] as? Bool == false)
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":100,"exclude":["i2"],"exclude_observed":true}"#)) { r in
                #expect(r.status == .ok)
                let items = (json(r.body)["items"] as? [[String: Any]] ?? []).compactMap { $0["item"] as? String }
                #expect(!items.isEmpty && !items.contains("i1") && !items.contains("i2"))
            }
        }
    }

    @Test func integerIdsAndBulkIngest() async throws {
        try await withApp { client, _ in
            try await client.execute(uri: "/v1/models/demo/observations", method: .post,
                                     body: ByteBuffer(string: #"{"observations":[{"uid":17,"item":"i1","label":4},{"uid":"17","item":3,"label":2.5}]}"#)) { r in
                #expect(r.status == .ok)
                #expect(json(r.body)["accepted"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/models/demo/users/17", method: .get) { r in
                let body = json(r.body)
                #expect(body["observations"] as? Int == 2 && body["bootstrapped"] as? Bool == true)
            }
        }
    }

    @Test func modelsHealthMetricsAndOpenAPI() async throws {
        try await withApp { client, _ in
            try await client.execute(uri: "/v1/models", method: .get) { r in
                let models = json(r.body)["models"] as? [[String: Any]] ?? []
                #expect(models.count == 1 && models[0]["name"] as? String == "demo" && models[0]["dimension"] as? Int == 4)
            }
            try await client.execute(uri: "/v1/models/demo", method: .get) { r in
                let versions = json(r.body)["versions"] as? [[String: Any]] ?? []
                #expect(versions.count == 1 && versions[0]["status"] as? String == "serving")
                #expect(versions[0]["training_rmse"] is Double && versions[0]["lambda"] is Double)
            }
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=i1", method: .get) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(text.contains(#"osprey_http_requests_total{route="predict",status="200"} 1"#))
                #expect(text.contains(#"osprey_http_request_duration_seconds_bucket{route="predict",le="0.000025"}"#))
                for engineTimer in ["osprey_log_commit_duration_seconds", "osprey_learning_duration_seconds"] {
                    #expect(text.contains(engineTimer + #"_bucket{le="0.000025"}"#), "\(engineTimer) has the request timers' buckets")
                }
                #expect(text.contains(#"osprey_model_version{model="demo"} 1"#))
                #expect(text.contains("osprey_observations_total") && text.contains("osprey_users"))
            }
            try await client.execute(uri: "/openapi.yaml", method: .get) { r in
                #expect(String(buffer: r.body).hasPrefix("openapi: 3.1"))
            }
        }
    }

    /// Every kind of bad input gets its 4xx and JSON error, and nothing is logged.
    @Test func badInputIsRejectedAndChangesNothing() async throws {
        try await withApp(maxBodyBytes: 2048) { client, t in
            let observe = "/v1/models/demo/users/u1/observe"
            let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                (observe, .post, #"{"item":"i1","label":4"#, .badRequest, "bad_request"),
                (observe, .post, "", .badRequest, "bad_request"),
                (observe, .post, #"{"item":"i1"}"#, .badRequest, "bad_request"),
                (observe, .post, #"{"item":"i1","label":"4"}"#, .badRequest, "bad_request"),
                (observe, .post, #"{"item":["i1"],"label":4}"#, .badRequest, "bad_request"),
                (observe, .post, #"{"item":"i1","label":NaN}"#, .badRequest, "bad_request"),
                (observe, .post, #"{"item":"i1","label":1e39}"#, .badRequest, "invalid_argument"),
                (observe, .post, #"{"item":"","label":1}"#, .badRequest, "invalid_argument"),
                (observe, .post, #"{"item":"i1","label":1,"pad":"\#(String(repeating: "x", count: 4096))"}"#, .contentTooLarge, "payload_too_large"),
                ("/v1/models/nope/users/u1/observe", .post, #"{"item":"i1","label":1}"#, .notFound, "unknown_model"),
                ("/v1/models/demo/observations", .post, #"{"observations":[{"uid":"a","item":"i1","label":1},{"uid":"","item":"i1","label":1}]}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/observations", .post, #"{"observations":[]}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/users/u1/predict?item=zzz", .get, nil, .notFound, "unknown_item"),
                ("/v1/models/demo/users/u1/predict", .get, nil, .badRequest, "bad_request"),
                ("/v1/models/nope/users/u1/predict?item=i1", .get, nil, .notFound, "unknown_model"),
                ("/v1/models/demo/users/u1/topk", .post, #"{"k":0}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/users/u1/topk", .post, #"{"k":-3}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/users/u1/topk", .post, #"{"k":1000000000}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/users/u1/topk", .post, #"{"k":2,"items":["i1","zzz"]}"#, .notFound, "unknown_item"),
                ("/v1/models/nope", .get, nil, .notFound, "unknown_model"),
                ("/nothing/here", .get, nil, .notFound, "not_found"),
            ]
            for (uri, method, body, status, code) in cases {
                try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { r in
                    #expect(r.status == status, "\(method) \(uri) \(body ?? "")")
                    #expect(errorCode(r.body) == code, "\(method) \(uri) \(body ?? "")")
                    #expect(r.headers[.contentType] == "application/json")
                }
            }
            #expect(try t.stores.log.observationCount(model: "demo") == 0)
            try await client.execute(uri: "/v1/models/demo/users/u1", method: .get) { r in
                #expect(json(r.body)["observations"] as? Int == 0)
            }
        }
    }

    @Test func retrainJobsAndRollback() async throws {
        try await withApp { client, _ in
            try await client.execute(uri: "/v1/models/demo/users/u1/observe", method: .post, body: ByteBuffer(string: #"{"item":"fresh","label":5}"#)) { _ in }
            try await client.execute(uri: "/v1/models/demo/retrain", method: .post, body: ByteBuffer(string: #"{"wait":true}"#)) { r in
                #expect(r.status == .ok)
                let job = json(r.body)
                #expect(job["phase"] as? String == "done" && job["version"] as? Int == 2 && job["id"] as? Int == 1)
                #expect(job["cancel_requested"] as? Bool == false)
            }
            try await client.execute(uri: "/v1/models/demo/jobs/1", method: .get) { r in
                #expect(json(r.body)["phase"] as? String == "done")
            }
            try await client.execute(uri: "/v1/models/demo/users/u1/predict?item=fresh", method: .get) { r in
                #expect(r.status == .ok && json(r.body)["version"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/models/demo", method: .get) { r in
                let versions = json(r.body)["versions"] as? [[String: Any]] ?? []
                #expect(versions.compactMap { $0["status"] as? String } == ["retired", "serving"])
                #expect(versions.last?["parent"] as? Int == 1 && versions.last?["trained_through_seq"] is Int)
            }
            try await client.execute(uri: "/v1/models/demo/retrain", method: .post) { r in
                #expect(r.status == .accepted)
                #expect(json(r.body)["id"] as? Int == 2)
            }
            var phase = ""
            for _ in 0..<500 where phase != "done" && phase != "failed" {
                try await Task.sleep(for: .milliseconds(20))
                phase = try await client.execute(uri: "/v1/models/demo/jobs/2", method: .get) { json($0.body)["phase"] as? String ?? "" }
            }
            #expect(phase == "done")
            try await client.execute(uri: "/v1/models/demo/rollback", method: .post, body: ByteBuffer(string: #"{"version":1}"#)) { r in
                #expect(r.status == .ok && json(r.body)["version"] as? Int == 1)
            }
            let cases: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                ("/v1/models/demo/rollback", .post, #"{"version":42}"#, .notFound, "unknown_version"),
                ("/v1/models/demo/rollback", .post, #"{}"#, .badRequest, "bad_request"),
                ("/v1/models/demo/jobs/77", .get, nil, .notFound, "unknown_job"),
                ("/v1/models/demo/jobs/x", .get, nil, .badRequest, "bad_request"),
                ("/v1/models/nope/retrain", .post, nil, .notFound, "unknown_model"),
                ("/v1/models/demo/jobs/1/cancel", .post, nil, .conflict, "conflict"),
                ("/v1/models/demo/jobs/77/cancel", .post, nil, .notFound, "unknown_job"),
                ("/v1/models/demo/jobs/x/cancel", .post, nil, .badRequest, "bad_request"),
            ]
            for (uri, method, body, status, code) in cases {
                try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { r in
                    #expect(r.status == status, "\(uri)")
                    #expect(errorCode(r.body) == code, "\(uri)")
                }
            }
        }
    }

    @Test func explorationThroughTheAPI() async throws {
        try await withApp { client, t in
            let uid = t.ratings[0].uid
            let bad: [(String, HTTPRequest.Method, String, HTTPResponse.Status, String)] = [
                ("/v1/models/demo/exploration", .put, #"{"policy":"sometimes"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/exploration", .put, #"{"policy":"epsilon_greedy(2)"}"#, .badRequest, "invalid_argument"),
                // The canonical form only, as openapi.yaml's pattern has it.
                ("/v1/models/demo/exploration", .put, #"{"policy":"LinUCB(1.5)"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/exploration", .put, #"{"policy":"linucb( 1.5 )"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/exploration", .put, #"{"policy":null}"#, .badRequest, "bad_request"),
                ("/v1/models/nope/exploration", .put, #"{"policy":"greedy"}"#, .notFound, "unknown_model"),
                ("/v1/models/demo/users/\(uid)/observe", .post, #"{"item":"i1","label":3,"event_id":"nope"}"#, .notFound, "unknown_event"),
                ("/v1/models/demo/evaluate-policy", .post, #"{"policy":"linucb(-1)"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/evaluate-policy", .post, #"{"policy":"greedy","limit":0}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/evaluate-policy", .post, #"{"policy":"greedy","version":9}"#, .notFound, "unknown_version"),
            ]
            for (uri, method, body, status, code) in bad {
                try await client.execute(uri: uri, method: method, body: ByteBuffer(string: body)) { r in
                    #expect(r.status == status, "\(uri) \(body)")
                    #expect(errorCode(r.body) == code, "\(uri) \(body)")
                }
            }
            try await client.execute(uri: "/v1/models/demo/exploration", method: .put, body: ByteBuffer(string: #"{"policy":"linucb(1.5)"}"#)) { r in
                #expect(r.status == .ok && json(r.body)["exploration"] as? String == "linucb(1.5)")
            }
            try await client.execute(uri: "/v1/models/demo", method: .get) { r in
                #expect(json(r.body)["exploration"] as? String == "linucb(1.5)")
            }
            var eventId = "", shown = ""
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":2,"items":["i1","i2","i3","i4"]}"#)) { r in
                let body = json(r.body)
                #expect(r.status == .ok && body["policy"] as? String == "linucb(1.5)")
                eventId = body["event_id"] as? String ?? ""
                let items = body["items"] as? [[String: Any]] ?? []
                #expect(items.count == 2 && items.allSatisfy {
                    ($0["ucb"] as? Double ?? -.infinity) >= ($0["score"] as? Double ?? .infinity) && $0["propensity"] as? Double == 1
                })
                shown = items.first?["item"] as? String ?? ""
            }
            #expect(!eventId.isEmpty)
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post,
                                     body: ByteBuffer(string: #"{"k":2,"explore":false}"#)) { r in
                let body = json(r.body)
                #expect(body["policy"] as? String == "greedy")
                #expect((body["items"] as? [[String: Any]] ?? []).allSatisfy { $0["ucb"] == nil })
            }
            try await client.execute(uri: "/v1/models/demo/users/\(uid)/observe", method: .post,
                                     body: ByteBuffer(string: #"{"item":"\#(shown)","label":4,"event_id":"\#(eventId)"}"#)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/v1/models/demo/observations", method: .post,
                                     body: ByteBuffer(string: #"{"observations":[{"uid":"someone-else","item":"i1","label":4,"event_id":"\#(eventId)"}]}"#)) { r in
                #expect(r.status == .notFound && errorCode(r.body) == "unknown_event")
            }
            try await client.execute(uri: "/v1/models/demo/evaluate-policy", method: .post, body: ByteBuffer(string: #"{"policy":"greedy"}"#)) { r in
                let body = json(r.body)
                #expect(r.status == .ok && body["decisions"] as? Int == 2 && body["used"] as? Int == 1)
                #expect((body["estimates"] as? [Any])?.isEmpty == true, "one decision is too few for an interval")
                #expect((body["skipped"] as? [String: Any])?["no_feedback"] as? Int == 1, "the explore:false answer got no feedback")
                #expect((body["skipped"] as? [String: Any])?["no_candidates"] as? Int == 0)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(text.contains(#"osprey_decisions_total{model="demo"} 2"#))
                #expect(text.contains(#"osprey_decision_feedback_total{model="demo"} 1"#))
            }
        }
    }

    @Test func competingVersionsThroughTheAPI() async throws {
        try await withApp { client, t in
            let bad: [(String, HTTPRequest.Method, String?, HTTPResponse.Status, String)] = [
                ("/v1/models/demo/challenger", .post, #"{"version":1}"#, .conflict, "conflict"),
                ("/v1/models/demo/challenger", .post, #"{"version":9}"#, .notFound, "unknown_version"),
                ("/v1/models/demo/challenger", .post, #"{"version":9,"allocation":"half"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/retrain", .post, #"{"challenger":"split(0)"}"#, .badRequest, "invalid_argument"),
                ("/v1/models/demo/challenger", .delete, nil, .conflict, "conflict"),
                ("/v1/models/demo/promote", .post, nil, .conflict, "conflict"),
            ]
            for (uri, method, body, status, code) in bad {
                try await client.execute(uri: uri, method: method, body: body.map { ByteBuffer(string: $0) }) { r in
                    #expect(r.status == status, "\(uri) \(body ?? "")")
                    #expect(errorCode(r.body) == code, "\(uri) \(body ?? "")")
                }
            }
            try await client.execute(uri: "/v1/models/demo/retrain", method: .post,
                                     body: ByteBuffer(string: #"{"wait":true,"challenger":"split(0.5)"}"#)) { r in
                #expect(json(r.body)["phase"] as? String == "done" && json(r.body)["version"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/models/demo", method: .get) { r in
                let body = json(r.body)
                let c = body["competition"] as? [String: Any] ?? [:]
                #expect(body["version"] as? Int == 1 && c["champion"] as? Int == 1 && c["challenger"] as? Int == 2)
                #expect(c["allocation"] as? String == "split(0.5)" && c["challenger_share"] as? Double == 0.5)
                #expect((c["versions"] as? [[String: Any]])?.map { $0["version"] as? Int } == [1, 2])
                let statuses = (body["versions"] as? [[String: Any]] ?? []).map { $0["status"] as? String ?? "" }
                #expect(statuses == ["serving", "challenger"])
            }
            let uids = Set(t.ratings.map(\.uid)).sorted()
            var versions = Set<Int>()
            var answers: [(uid: String, item: String, event: String, version: Int)] = []
            for uid in uids.prefix(20) {
                try await client.execute(uri: "/v1/models/demo/users/\(uid)/topk", method: .post, body: ByteBuffer(string: #"{"k":1}"#)) { r in
                    let body = json(r.body)
                    versions.insert(body["version"] as? Int ?? 0)
                    let item = ((body["items"] as? [[String: Any]])?.first?["item"] as? String) ?? ""
                    answers.append((uid, item, body["event_id"] as? String ?? "", body["version"] as? Int ?? 0))
                }
            }
            #expect(versions == [1, 2], "both versions serve someone")
            // Feedback with a negative reward is credited to the version that decided.
            let first = try #require(answers.first)
            try await client.execute(uri: "/v1/models/demo/users/\(first.uid)/observe", method: .post,
                                     body: ByteBuffer(string: #"{"item":"\#(first.item)","label":-2.5,"event_id":"\#(first.event)"}"#)) { r in
                #expect(r.status == .ok)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                #expect(String(buffer: r.body).contains(#"osprey_competition_reward_sum{model="demo",version="\#(first.version)"} -2.5"#))
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(text.contains(#"osprey_competition_challenger_share{model="demo"} 0.5"#))
                #expect(text.contains(#"osprey_competition_decisions_total{model="demo",version="2"}"#))
            }
            try await client.execute(uri: "/v1/models/demo/promote", method: .post) { r in
                #expect(r.status == .ok && json(r.body)["version"] as? Int == 2)
            }
            try await client.execute(uri: "/v1/models/demo", method: .get) { r in
                #expect(json(r.body)["version"] as? Int == 2 && json(r.body)["competition"] is NSNull)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(!text.contains("osprey_competition_decisions_total{"), "an ended competition's series are removed")
                #expect(text.contains(#"osprey_model_version{model="demo"} 2"#), "the promoted version is recorded")
            }
            try await client.execute(uri: "/v1/models/demo/challenger", method: .post, body: ByteBuffer(string: #"{"version":1,"allocation":"thompson"}"#)) { r in
                #expect(r.status == .ok && (json(r.body)["competition"] as? [String: Any])?["challenger"] as? Int == 1)
            }
            try await client.execute(uri: "/v1/models/demo/challenger", method: .delete) { r in
                #expect(r.status == .ok && json(r.body)["competition"] is NSNull)
            }
        }
    }

    /// The feature cache's counts are in `/metrics` when it is configured, and absent when not.
    @Test func featureCacheCountsAreMetrics() async throws {
        let t = try TrainedStore()
        defer { t.remove() }
        for capacity in [0, 256] {
            let manager = try Manager(stores: try t.reopen(), configuration: .init(featureCache: .init(capacity: capacity)), metrics: .prometheus(), logger: quiet)
            let app = buildApplication(manager: manager, logger: quiet)
            try await app.test(.router) { client in
                for _ in 0..<3 {
                    try await client.execute(uri: "/v1/models/demo/users/\(t.ratings[0].uid)/predict?item=i1", method: .get) { r in
                        #expect(r.status == .ok)
                    }
                }
                try await client.execute(uri: "/metrics", method: .get) { r in
                    let text = String(buffer: r.body)
                    if capacity == 0 {
                        #expect(!text.contains("osprey_feature_cache"))
                    } else {
                        #expect(text.contains(#"osprey_feature_cache_hits_total{model="demo"} 2"#), "\(text)")
                        #expect(text.contains(#"osprey_feature_cache_misses_total{model="demo"} 1"#))
                        #expect(text.contains(#"osprey_feature_cache_evictions_total{model="demo"} 0"#))
                        #expect(text.contains(#"osprey_feature_cache_entries{model="demo"} 1"#))
                    }
                }
            }
        }
    }

    /// Snapshots are counted in `/metrics`: how many, the users they saved, their time, and
    /// whether one is under way.
    @Test(arguments: TrainedStore.Backend.available)
    func snapshotsAreMetrics(_ backend: TrainedStore.Backend) async throws {
        let t = try TrainedStore(backend: backend)
        defer { t.remove() }
        let manager = try Manager(stores: try t.reopen(), metrics: .prometheus(), logger: quiet)
        let app = buildApplication(manager: manager, logger: quiet)
        @Sendable func metric(_ text: String, _ name: String) -> Double? {
            text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.split(separator: " ")[1]) }
        }
        try await app.test(.router) { client in
            for (uid, item) in [("u1", "i1"), ("u2", "i2"), ("u1", "i3")] {
                try await client.execute(uri: "/v1/models/demo/users/\(uid)/observe", method: .post,
                                         body: ByteBuffer(string: #"{"item":"\#(item)","label":4}"#)) { r in #expect(r.status == .ok) }
            }
            let before = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metric(before, "osprey_snapshots_total") == 0 && metric(before, "osprey_snapshot_users_total") == 0, "\(before)")
            #expect(metric(before, "osprey_snapshot_seconds_total") == 0 && metric(before, "osprey_snapshot_in_progress") == 0)
            #expect(metric(before, "osprey_snapshot_failures_total") == 0)
            #expect(try manager.snapshotter.snapshot() == 2)
            let after = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(metric(after, "osprey_snapshots_total") == 1 && metric(after, "osprey_snapshot_users_total") == 2, "\(after)")
            #expect((metric(after, "osprey_snapshot_seconds_total") ?? 0) > 0 && metric(after, "osprey_snapshot_in_progress") == 0)
        }
    }

    @Test func percentEncodedIdsAreDecoded() async throws {
        try await withApp { client, _ in
            try await client.execute(uri: "/v1/models/demo/users/u%201/predict?x=1&item=i%31", method: .get) { r in
                #expect(r.status == .ok)
                let body = json(r.body)
                #expect(body["uid"] as? String == "u 1" && body["item"] as? String == "i1")
            }
        }
    }

    /// The thread counts a server runs by default and when asked: half the cores' event loops (at
    /// least one) and a scan thread per core.
    @Test func serverThreadCounts() {
        let cores = System.coreCount
        #expect(ServerConfiguration().eventLoopCount == max(1, cores / 2))
        #expect(ServerConfiguration().scanThreadCount == cores)
        #expect(ServerConfiguration(eventLoops: 3, scanThreads: 0).eventLoopCount == 3)
        #expect(ServerConfiguration(eventLoops: 3, scanThreads: 0).scanThreadCount == 0)
    }

    @Test func queryValueParsing() {
        #expect(API.queryValue("item", in: "item=a%2Fb") == "a/b")
        #expect(API.queryValue("item", in: "items=x&item=y") == "y")
        #expect(API.queryValue("item", in: "&&item=y&item=z") == "y")
        #expect(API.queryValue("item", in: "item=a+b%2B") == "a b+")
        #expect(API.queryValue("item", in: "item=%ZZ") == nil)
        #expect(API.queryValue("item", in: "other=1") == nil)
        #expect(API.queryValue("item", in: "") == nil)
    }

    @Test func jsonWriterEscapes() {
        var out = ""
        JSONWriter.appendString("a\"b\\c\nd\u{01}é", to: &out)
        #expect(out == #""a\"b\\c\nd\u0001é""#)
    }
}
