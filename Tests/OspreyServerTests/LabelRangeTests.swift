import Foundation
import HummingbirdTesting
import NIOCore
import OspreyEngine
import OspreyTestSupport
import Testing
@testable import OspreyServer

/// Labels lie within ±`--max-abs-label` (``Manager/Configuration/maxAbsLabel``, 1e6 by default):
/// one outside is a 400 naming the field and the limit, on the fast path and the router alike
/// (both go through the ingestor's check), and is neither logged nor learned.
struct LabelRangeTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let limit: Double?
        let text: String
        var testDescription: String { limit.map { "--max-abs-label \($0)" } ?? "the default limit" }
    }

    @Test(arguments: [Case(limit: nil, text: "1000000"), Case(limit: 10, text: "10")])
    func aLabelOutsideTheRangeIsRefusedAndNotLogged(_ c: Case) async throws {
        try await FastPathTests().withServers(configure: { if let limit = c.limit { $0.maxAbsLabel = limit } }) { fast, routed, t in
            let logged = try t.reopen()
            let max = c.text
            func answers(_ uri: String, _ body: String) async throws -> FastPathTests.Answer {
                let a = try await FastPathTests().answer(fast, .post, uri, body)
                let b = try await FastPathTests().answer(routed, .post, uri, body)
                #expect(a == b, "\(uri) \(body)")
                return a
            }
            let refused = [
                ("\(max).5", "\(max).5"), ("-\(max).0001", "-\(max).0001"), ("\(max)1", "\(max)1"), ("3.4028235e38", "3.4028235e+38"),
            ]
            for (label, shown) in refused {
                let a = try await answers("/v1/models/demo/users/range-user/observe", #"{"item":"i1","label":\#(label)}"#)
                #expect(a.status == 400, "\(label): \(a)")
                #expect(a.body == #"{"error":{"code":"invalid_argument","message":"label must be a number from -\#(max) to \#(max), got \#(shown)"}}"#,
                        "\(label): \(a)")
            }
            // A bulk request with one label outside: refused whole, naming the observation.
            let bulk = #"{"observations":[{"uid":"range-user","item":"i1","label":1},{"uid":"range-user","item":"i2","label":-\#(max)1}]}"#
            let b = try await FastPathTests().answer(routed, .post, "/v1/models/demo/observations", bulk)
            #expect(b.body == #"{"error":{"code":"invalid_argument","message":"observation 1: label must be a number from -\#(max) to \#(max), got -\#(max)1"}}"#,
                    "\(b)")
            #expect(try logged.log.observationCount(model: "demo") == 0)
            let info = try await FastPathTests().answer(fast, .get, "/v1/models/demo/users/range-user", nil)
            #expect(info.body.contains(#""observations":0"#), "nothing learned: \(info)")
            // At the limits: accepted, on both.
            for label in [max, "-\(max)"] {
                let a = try await answers("/v1/models/demo/users/range-user/observe", #"{"item":"i1","label":\#(label)}"#)
                #expect(a.status == 200, "\(label): \(a)")
            }
            #expect(try logged.log.observationCount(model: "demo") == 4)
        }
    }
}
