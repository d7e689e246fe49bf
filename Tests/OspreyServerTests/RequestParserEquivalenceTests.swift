import Foundation
import NIOCore
import Testing
@testable import OspreyServer

/// The server's hand-written reading of request bodies — the direct reader of the hot bodies
/// (``PlainReader`` in RequestBodies.swift) and the strict reading on top of `JSONDecoder`
/// (StrictDecoding.swift, DuplicateKeys.swift) — checked against a reference on a corpus of valid
/// and invalid bodies: for each body both accept it with the same decoded value, or both reject it.
///
/// The reference is `JSONDecoder` with mirror structs whose `Decodable` conformances the compiler
/// synthesizes (only the id union is written by hand), plus the two rules of openapi.yaml such
/// mirrors cannot express, checked on `JSONSerialization`'s reading of the body: no field a
/// schema does not define (`additionalProperties: false`) and no `null` (no field is nullable).
///
/// Where the two legitimately differ, the corpus entry says why (`differs:`), and the test checks
/// that the difference is the documented one: the server rejects what the reference accepts.
/// - A key repeated within one object: `JSONDecoder` keeps its first value (Python's `json`, and
///   so schemathesis and most schema validators, the last); the server rejects the body, so that
///   no reader in front of it can see a different request (DuplicateKeys.swift).
///
/// Not differences, but worth knowing when reading the corpus: `JSONDecoder` reads an integer
/// field from any number with an integral value (`2.0`, `1e1`: JSON Schema's `integer` too) and
/// rejects a number that overflows or underflows a `Double` (`1e400`, and `1e-400`, which JSON
/// Schema would read as 0 but which neither Python's nor JavaScript's JSON ever writes).
struct RequestParserEquivalenceTests {
    // MARK: The corpus

    struct Body: Sendable, CustomTestStringConvertible {
        let bytes: [UInt8]
        /// Why the server rejects this body although the reference accepts it.
        let differs: String?

        init(_ text: String, differs: String? = nil) {
            self.init(bytes: Array(text.utf8), differs: differs)
        }

        init(bytes: [UInt8], differs: String? = nil) {
            self.bytes = bytes
            self.differs = differs
        }

        var testDescription: String { String(decoding: bytes, as: UTF8.self).debugDescription }
    }

    static let repeatedKey = "a repeated key: JSONDecoder keeps the first value, the server rejects"

    /// Bodies every reader should agree on whatever the endpoint: malformed JSON and the wrong
    /// top-level type.
    static let malformed: [Body] = [
        Body(""), Body(" "), Body("{"), Body("}"), Body("[]"), Body("null"), Body("true"), Body("1"), Body(#""x""#),
        Body("{,}"), Body("{\"k\" 1}"), Body("{'k':1}"), Body("{k:1}"), Body("{\"k\":1"), Body("{\"k\":1}}"),
        Body("{\"k\":1} x"), Body("{\"k\":1},"), Body("{\"k\":1,}"), Body("{\"k\":1}\u{0}"), Body("{\"k\":1}\u{0B}"),
        Body(bytes: [0xFF, 0xFE]), Body(bytes: Array("{\"k\":1".utf8) + [0xC3]),
    ]

    static let topK: [Body] = malformed + [
        // Valid, the plain shapes the direct reader reads itself.
        Body("{}"), Body(#"{"k":10}"#), Body(#"{"k":1}"#), Body(#"{"k":10000}"#), Body(#"{"k":0}"#),
        Body(#" { "k" : 3 , "items" : [ "i1" , 7 , "i3" ] } "#), Body("{\t\"k\":\r\n3}\n"), Body(#"{"items":[]}"#),
        Body(#"{"k":2,"exclude":["a b","c"],"exclude_observed":true,"explore":false}"#), Body(#"{"explore":true,"k":1}"#),
        Body(#"{"items":["i1","i1",0,123456789012345678]}"#), Body(#"{"exclude":[""]}"#),
        // Valid, read by JSONDecoder.
        Body(#"{"k":2.0}"#), Body(#"{"k":1e1}"#), Body(#"{"k":1E+1}"#), Body(#"{"k":-0}"#), Body(#"{"k":-5}"#),
        Body(#"{"k":9223372036854775807}"#), Body(#"{"items":[-9223372036854775808, 9223372036854775807]}"#),
        Body(#"{"items":[1.0, -3]}"#), Body(#"{"items":["é","日本"]}"#), Body(#"{"items":["\u00e9","\ud83d\ude00","a\"b\\c\/d\n"]}"#),
        Body(#"{"\u006b":5}"#), Body(#"{"items":["\u0000"]}"#), Body(bytes: [0xEF, 0xBB, 0xBF] + Array(#"{"k":3}"#.utf8)),
        // Wrong types, null, missing, out of range.
        Body(#"{"k":2.5}"#), Body(#"{"k":1e400}"#), Body(#"{"k":-1e400}"#), Body(#"{"k":99999999999999999999}"#),
        Body(#"{"k":9223372036854775808}"#), Body(#"{"k":"10"}"#), Body(#"{"k":true}"#), Body(#"{"k":[]}"#), Body(#"{"k":{}}"#),
        Body(#"{"k":null}"#), Body(#"{"explore":null}"#), Body(#"{"exclude_observed":null}"#), Body(#"{"items":null}"#),
        Body(#"{"items":[null]}"#), Body(#"{"items":[true]}"#), Body(#"{"items":[1.5]}"#), Body(#"{"items":[1e400]}"#),
        Body(#"{"items":[9223372036854775808]}"#), Body(#"{"items":[[]]}"#), Body(#"{"items":[{}]}"#), Body(#"{"items":"i1"}"#),
        Body(#"{"explore":"false"}"#), Body(#"{"explore":0}"#), Body(#"{"exclude_observed":tru}"#),
        Body(#"{"k": 2.5}"#), Body(#"{"k":2.5,"items":["i1"]}"#), Body(#"[{"k":2}]"#), Body(#"{"k":"2"}"#), Body(#"{"k":1e-400}"#),
        Body(#"{"exclude":{"i1":true}}"#), Body(#"{"exclude":[false]}"#), Body(#"{"items":["i1",true]}"#), Body(#"{"exclude_observed":1}"#),
        // Extra fields, nested garbage.
        Body(#"{"extra":1}"#), Body(#"{"K":1}"#), Body(#"{"k ":1}"#), Body(#"{"k":1,"extra":{"nested":[1,2,{"x":null}]}}"#),
        Body(#"{"k":{"k":{"k":[]}}}"#), Body(#"{"items":[{"item":"i1"}]}"#),
        // Malformed numbers, strings and literals.
        Body(#"{"k":01}"#), Body(#"{"k":007}"#), Body(#"{"k":+1}"#), Body(#"{"k":.5}"#), Body(#"{"k":1.}"#), Body(#"{"k":1e}"#),
        Body(#"{"k":NaN}"#), Body(#"{"k":Infinity}"#), Body(#"{"k":0x10}"#), Body(#"{"items":["a\x"]}"#), Body(#"{"items":["\ud800"]}"#),
        Body(#"{"items":["\u12"]}"#), Body("{\"items\":[\"tab\there\"]}"), Body(#"{"items":[1,]}"#), Body(#"{"items":[,1]}"#),
        Body(#"{"explore":True}"#), Body(#"{"explore":nul}"#),
        Body(bytes: Array(#"{"items":[""#.utf8) + [0xFF] + Array(#""]}"#.utf8)),
        Body(bytes: Array(#"{"items":[""#.utf8) + [0xC0, 0xAF] + Array(#""]}"#.utf8)),
        Body(bytes: Array(#"{"items":[""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""]}"#.utf8)),
        // Repeated keys.
        Body(#"{"k":1,"k":2}"#, differs: repeatedKey), Body(#"{"explore":true,"explore":false}"#, differs: repeatedKey),
        Body(#"{"items":["a"],"k":3,"items":["b"]}"#, differs: repeatedKey), Body(#"{"k":1,"\u006b":2}"#, differs: repeatedKey),
    ]

    static let observe: [Body] = malformed + [
        // Valid, the plain shapes.
        Body(#"{"item":"i1","label":4}"#), Body(#"{"label":4.5,"item":"i1"}"#), Body(#" {"item" : 17 , "label" : -0.25 , "event_id" : "e-1"} "#),
        Body(#"{"item":"i1","label":-0}"#), Body(#"{"item":"i1","label":0.30000000000000004}"#), Body(#"{"item":"i1","label":9007199254740993}"#),
        Body(#"{"item":"i1","label":123456789012345678901234567890}"#), Body(#"{"item":"i1","label":1,"event_id":""}"#),
        Body(#"{"item":"","label":1}"#), Body(#"{"item":0,"label":1}"#),
        Body(#"{"item":"i1","label":1,"observation_id":"o-1"}"#), Body(#"{"observation_id":"o 2","event_id":"e","item":"i1","label":2}"#),
        Body(#"{"item":"i1","label":1,"observation_id":null}"#), Body(#"{"item":"i1","label":1,"observation_id":3}"#),
        Body(#"{"item":"i1","label":1,"observation_id":"a","observation_id":"b"}"#, differs: repeatedKey),
        // Valid, read by JSONDecoder.
        Body(#"{"item":"i1","label":1e2}"#), Body(#"{"item":"i1","label":1E-2}"#), Body(#"{"item":"i1","label":-0.0e0}"#),
        Body(#"{"item":"i1","label":0.1000000000000000055511151231257827}"#), Body(#"{"item":"i1","label":1e39}"#),
        Body(#"{"item":"i1","label":1.7976931348623157e308}"#), Body(#"{"item":"i1","label":5e-324}"#),
        Body(#"{"item":-5,"label":3}"#), Body(#"{"item":1.0,"label":3}"#), Body(#"{"item":"i\u0031","label":3}"#),
        Body(#"{"item":"é","label":3,"event_id":"\ud83d\ude00"}"#), Body(#"{"item":"i1","label":1.5e0}"#),
        // Wrong types, null, missing, out of range.
        Body(#"{"item":"i1"}"#), Body(#"{"label":3}"#), Body("{}"), Body(#"{"item":"i1","label":"3"}"#), Body(#"{"item":"i1","label":true}"#),
        Body(#"{"item":"i1","label":null}"#), Body(#"{"item":null,"label":1}"#), Body(#"{"item":"i1","label":1,"event_id":null}"#),
        Body(#"{"item":"i1","label":1,"event_id":7}"#), Body(#"{"item":"i1","label":1e400}"#), Body(#"{"item":"i1","label":-1e400}"#),
        Body(#"{"item":"i1","label":1e-400}"#), Body(#"{"item":[],"label":1}"#), Body(#"{"item":true,"label":1}"#),
        Body(#"{"item":{"id":"i1"},"label":1}"#), Body(#"{"item":2.5,"label":1}"#), Body(#"{"item":18446744073709551615,"label":1}"#),
        Body(#"{"item":"i1","label":"5"}"#), Body(#"{"item":"i1","label":[5]}"#), Body(#"{"item":"i1","label":{}}"#),
        Body(#"[{"item":"i1","label":1}]"#), Body(#"{"item":"i1","label":1,"event_id":["e"]}"#), Body(#"{"item":"i1","label":1000001}"#),
        // Extra fields.
        Body(#"{"item":"i1","label":1,"extra":null}"#), Body(#"{"item":"i1","label":1,"uid":"u1"}"#), Body(#"{"item":"i1","label":1,"Label":2}"#),
        // Malformed.
        Body(#"{"item":"i1","label":01}"#), Body(#"{"item":"i1","label":1.}"#), Body(#"{"item":"i1","label":.5}"#), Body(#"{"item":"i1","label":+1}"#),
        Body(#"{"item":"i1","label":-}"#), Body(#"{"item":"i1","label":1e+}"#), Body(#"{"item":"i1","label":3,}"#), Body(#"{"item":"i1","label":3}x"#),
        Body(#"{"item":"i1","label":1"#), Body(#"{"item":"i1,"label":1}"#), Body(bytes: Array(#"{"item":""#.utf8) + [0x80] + Array(#"","label":1}"#.utf8)),
        // Repeated keys.
        Body(#"{"item":"i1","label":3,"item":"i2"}"#, differs: repeatedKey), Body(#"{"item":"i1","label":3,"label":3}"#, differs: repeatedKey),
        Body(#"{"item":"i1","label":3,"event_id":"a","event_id":"b"}"#, differs: repeatedKey),
    ]

    static let observations: [Body] = malformed + [
        Body(#"{"observations":[{"uid":"u1","item":"i2","label":3.5},{"uid":17,"item":42,"label":5.0,"event_id":"e"}]}"#),
        Body(#"{"observations":[]}"#),
        Body(#"{"observations":null}"#), Body(#"{"observations":[null]}"#), Body(#"{"observations":{}}"#), Body("{}"),
        Body(#"{"observations":[{"uid":"u1","item":"i2"}]}"#), Body(#"{"observations":[{"uid":"u1","item":"i2","label":1,"event_id":null}]}"#),
        Body(#"{"observations":[{"uid":"u1","item":"i2","label":1,"extra":0}]}"#), Body(#"{"observations":[],"extra":0}"#),
        Body(#"{"observations":[{"uid":9223372036854775808,"item":"i2","label":1}]}"#),
        Body(#"[{"observations":[]}]"#), Body(#"{"observations":[[1]]}"#), Body(#"{"observations":"x"}"#), Body(#"{"observations":[1]}"#),
        Body(#"{"observations":[{"uid":"u1","item":"i2","label":"1"}]}"#), Body(#"{"observations":[{"uid":true,"item":"i2","label":1}]}"#),
        Body(#"{"observations":[{"uid":"u1","item":"i2","label":1},null]}"#),
        Body(#"{"observations":[{"uid":"u1","item":"i2","label":1,"uid":"u2"}]}"#, differs: repeatedKey),
        Body(#"{"observations":[],"observations":[]}"#, differs: repeatedKey),
    ]

    static let retrain: [Body] = malformed + [
        Body("{}"), Body(#"{"wait":true}"#), Body(#"{"wait":false,"challenger":"split(0.1)"}"#), Body(#"{"challenger":"anything"}"#),
        Body(#"{"wait":null}"#), Body(#"{"challenger":null}"#), Body(#"{"challenger":{}}"#), Body(#"{"challenger":["thompson"]}"#),
        Body(#"{"challenger":1}"#), Body(#"{"wait":"true"}"#), Body(#"{"wait":true,"extra":[]}"#),
        Body(#"{"wait":true,"wait":false}"#, differs: repeatedKey),
    ]

    static let challenger: [Body] = malformed + [
        Body(#"{"version":2}"#), Body(#"{"version":2,"allocation":"thompson"}"#), Body(#"{"version":2.0}"#), Body(#"{"version":-3}"#),
        Body(#"{"version":2.5}"#), Body(#"{"version":"2"}"#), Body(#"{"version":null}"#), Body(#"{"allocation":"thompson"}"#),
        Body(#"{"version":2,"allocation":null}"#), Body(#"{"version":-5795895321630999279358894407680}"#),
        Body(#"{"version":2,"extra":"x"}"#), Body(#"{"version":2,"version":3}"#, differs: repeatedKey),
    ]

    static let rollback: [Body] = malformed + [
        Body(#"{"version":1}"#), Body(#"{"version":1e0}"#), Body("{}"), Body(#"{"version":null}"#), Body(#"{"version":1.5}"#),
        Body(#"{"version":1e19}"#), Body(#"{"version":[1]}"#), Body(#"{"version":1,"to":2}"#), Body(#"{"version":"1"}"#),
        Body(#"{"version":true}"#), Body("[1]"),
        Body(#"{"version":1,"version":1}"#, differs: repeatedKey),
    ]

    static let exploration: [Body] = malformed + [
        Body(#"{"policy":"greedy"}"#), Body(#"{"policy":""}"#), Body(#"{"policy":null}"#), Body(#"{"policy":1}"#), Body("{}"),
        Body(#"{"policy":"greedy","alpha":1}"#), Body(#"{"policy":"greedy","policy":"linucb(1.0)"}"#, differs: repeatedKey),
    ]

    static let evaluatePolicy: [Body] = malformed + [
        Body(#"{"policy":"greedy"}"#), Body(#"{"policy":"greedy","version":1,"limit":10,"samples":64,"seed":18446744073709551615}"#),
        Body(#"{"policy":"greedy","seed":0}"#), Body(#"{"policy":"greedy","seed":-1}"#), Body(#"{"policy":"greedy","seed":18446744073709551616}"#),
        Body(#"{"policy":"greedy","version":null}"#), Body(#"{"policy":"greedy","limit":null}"#), Body(#"{"policy":"greedy","samples":2.5}"#),
        Body(#"{"policy":"greedy","limit":"10"}"#), Body(#"{"version":1}"#), Body(#"{"policy":"greedy","extra":1}"#),
        Body(#"{"policy":"greedy","seed":1,"seed":2}"#, differs: repeatedKey),
    ]

    // MARK: The reference: mirrors with synthesized Decodable

    /// An id as openapi.yaml's `Id` has it: a string, or an integer of 64 bits.
    enum IDMirror: Decodable {
        case string(String)
        case integer(Int64)

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .string(s) } else { self = .integer(try c.decode(Int64.self)) }
        }

        var text: String {
            switch self {
            case .string(let s): s
            case .integer(let n): String(n)
            }
        }
    }

    struct TopKMirror: Decodable {
        var k: Int?
        var items: [IDMirror]?
        var exclude: [IDMirror]?
        var exclude_observed: Bool?
        var explore: Bool?

        static let shape = Shape.object(["k": .scalar, "items": .array(.scalar), "exclude": .array(.scalar),
                                         "exclude_observed": .scalar, "explore": .scalar])

        func same(as b: TopKBody) -> Bool {
            k == b.k && items?.map(\.text) == b.items?.map(\.value) && exclude?.map(\.text) == b.exclude?.map(\.value)
                && exclude_observed == b.excludeObserved && explore == b.explore
        }
    }

    struct ObserveMirror: Decodable {
        var item: IDMirror
        var label: Double
        var event_id: String?
        var observation_id: String?

        static let shape = Shape.object(["item": .scalar, "label": .scalar, "event_id": .scalar, "observation_id": .scalar])

        /// The label's bits, so that -0 and 0 differ.
        func same(as b: ObserveBody) -> Bool {
            item.text == b.item.value && label.bitPattern == b.label.bitPattern && event_id == b.eventId
                && observation_id == b.observationId
        }
    }

    struct ObservationMirror: Decodable {
        var uid: IDMirror
        var item: IDMirror
        var label: Double
        var event_id: String?
        var observation_id: String?
    }

    struct BulkMirror: Decodable {
        var observations: [ObservationMirror]

        static let shape = Shape.object(["observations": .array(.object([
            "uid": .scalar, "item": .scalar, "label": .scalar, "event_id": .scalar, "observation_id": .scalar,
        ]))])

        func same(as b: BulkObserveBody) -> Bool {
            observations.count == b.observations.count && zip(observations, b.observations).allSatisfy { m, o in
                m.uid.text == o.uid.value && m.item.text == o.item.value && m.label.bitPattern == o.label.bitPattern
                    && m.event_id == o.eventId && m.observation_id == o.observationId
            }
        }
    }

    struct RetrainMirror: Decodable {
        var wait: Bool?
        var challenger: String?

        static let shape = Shape.object(["wait": .scalar, "challenger": .scalar])

        func same(as b: RetrainBody) -> Bool { wait == b.wait && challenger == b.challenger }
    }

    struct ChallengerMirror: Decodable {
        var version: Int
        var allocation: String?

        static let shape = Shape.object(["version": .scalar, "allocation": .scalar])

        func same(as b: ChallengerBody) -> Bool { version == b.version && allocation == b.allocation }
    }

    struct RollbackMirror: Decodable {
        var version: Int

        static let shape = Shape.object(["version": .scalar])

        func same(as b: RollbackBody) -> Bool { version == b.version }
    }

    struct ExplorationMirror: Decodable {
        var policy: String

        static let shape = Shape.object(["policy": .scalar])

        func same(as b: ExplorationBody) -> Bool { policy == b.policy }
    }

    struct EvaluatePolicyMirror: Decodable {
        var policy: String
        var version: Int?
        var limit: Int?
        var samples: Int?
        var seed: UInt64?

        static let shape = Shape.object(["policy": .scalar, "version": .scalar, "limit": .scalar, "samples": .scalar, "seed": .scalar])

        func same(as b: EvaluatePolicyBody) -> Bool {
            policy == b.policy && version == b.version && limit == b.limit && samples == b.samples && seed == b.seed
        }
    }

    /// The fields a schema defines, for the rules the mirrors cannot express.
    indirect enum Shape: Sendable {
        case object([String: Shape])
        case array(Shape)
        case scalar
    }

    /// The first breach of `additionalProperties: false` or of "no null" in `value`
    /// (`JSONSerialization`'s reading), or nil. A value of the wrong type is the mirror's to reject.
    static func breach(_ value: Any, _ shape: Shape, at path: String = "") -> String? {
        if value is NSNull { return "null at `\(path)`" }
        switch shape {
        case .object(let fields):
            guard let object = value as? [String: Any] else { return nil }
            for (key, field) in object.sorted(by: { $0.key < $1.key }) {
                guard let fieldShape = fields[key] else { return "unknown field `\(key)`" }
                if let b = breach(field, fieldShape, at: path + "." + key) { return b }
            }
        case .array(let element):
            guard let array = value as? [Any] else { return nil }
            for (n, e) in array.enumerated() {
                if let b = breach(e, element, at: path + ".\(n)") { return b }
            }
        case .scalar:
            break
        }
        return nil
    }

    /// The reference's reading of `bytes`: the mirror, unless the body breaks a schema rule.
    static func reference<M: Decodable>(_ type: M.Type, _ shape: Shape, _ bytes: [UInt8]) -> Result<M, any Error> {
        let data = Data(bytes)
        return Result {
            let mirror = try JSONDecoder().decode(M.self, from: data)
            if let object = try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]),
               let b = breach(object, shape) {
                throw SchemaBreach(description: b)
            }
            return mirror
        }
    }

    struct SchemaBreach: Error, CustomStringConvertible {
        let description: String
    }

    /// Checks the server's reading against the reference's on one body; with `direct`, also that
    /// the direct reader, when it reads the body at all, reads what the reference does.
    func check<M: Decodable, B>(_ body: Body, _ mirror: M.Type, _ shape: Shape, same: (M, B) -> Bool,
                                server: (ByteBuffer) throws -> B, direct: ((ByteBuffer) -> B?)? = nil) {
        let buffer = ByteBuffer(bytes: body.bytes)
        let expected = Self.reference(M.self, shape, body.bytes)
        let got = Result { try server(buffer) }
        if let why = body.differs {
            // The documented difference, and only it: the reference accepts, the server rejects.
            #expect((try? expected.get()) != nil, "the reference should accept it (\(why))")
            #expect((try? got.get()) == nil, "the server should reject it (\(why))")
        } else {
            switch (expected, got) {
            case (.success(let m), .success(let b)): #expect(same(m, b), "different values: reference \(m), server \(b)")
            case (.failure, .failure): break
            case (.success(let m), .failure(let e)): Issue.record("the reference accepts (\(m)), the server rejects: \(e)")
            case (.failure(let e), .success(let b)): Issue.record("the reference rejects (\(e)), the server accepts: \(b)")
            }
        }
        if let direct, let d = direct(buffer) {
            switch expected {
            case .success(let m) where body.differs == nil: #expect(same(m, d), "the direct reader reads another value: \(d)")
            default: Issue.record("the direct reader accepts a body the server must reject: \(d)")
            }
        }
    }

    // MARK: The tests

    @Test(arguments: topK)
    func topKBodies(_ body: Body) {
        check(body, TopKMirror.self, TopKMirror.shape, same: { $0.same(as: $1) },
              server: TopKBody.decode(from:), direct: PlainReader.topK(in:))
    }

    @Test(arguments: observe)
    func observeBodies(_ body: Body) {
        check(body, ObserveMirror.self, ObserveMirror.shape, same: { $0.same(as: $1) },
              server: ObserveBody.decode(from:), direct: PlainReader.observe(in:))
    }

    @Test(arguments: observations)
    func bulkObserveBodies(_ body: Body) {
        check(body, BulkMirror.self, BulkMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(BulkObserveBody.self, from: $0) })
    }

    @Test(arguments: retrain)
    func retrainBodies(_ body: Body) {
        check(body, RetrainMirror.self, RetrainMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(RetrainBody.self, from: $0) })
    }

    @Test(arguments: challenger)
    func challengerBodies(_ body: Body) {
        check(body, ChallengerMirror.self, ChallengerMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(ChallengerBody.self, from: $0) })
    }

    @Test(arguments: rollback)
    func rollbackBodies(_ body: Body) {
        check(body, RollbackMirror.self, RollbackMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(RollbackBody.self, from: $0) })
    }

    @Test(arguments: exploration)
    func explorationBodies(_ body: Body) {
        check(body, ExplorationMirror.self, ExplorationMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(ExplorationBody.self, from: $0) })
    }

    @Test(arguments: evaluatePolicy)
    func evaluatePolicyBodies(_ body: Body) {
        check(body, EvaluatePolicyMirror.self, EvaluatePolicyMirror.shape, same: { $0.same(as: $1) },
              server: { try API.decodeJSON(EvaluatePolicyBody.self, from: $0) })
    }

    /// Every body the server rejects is told in the API's words (openapi.yaml's): the field's
    /// path in the body, or the body itself, and what it must be; never `JSONDecoder`'s account
    /// (Swift type names, "Expected to decode", a number "not representable"), and never "not
    /// valid JSON" for a body that is valid JSON.
    @Test(arguments: ["topk", "observe", "observations", "retrain", "challenger", "rollback", "exploration", "evaluate-policy"])
    func rejectionsAreToldInTheAPIsWords(_ endpoint: String) {
        let (corpus, read): ([Body], (ByteBuffer) throws -> Void) = switch endpoint {
        case "topk": (Self.topK, { _ = try TopKBody.decode(from: $0) })
        case "observe": (Self.observe, { _ = try ObserveBody.decode(from: $0) })
        case "observations": (Self.observations, { _ = try API.decodeJSON(BulkObserveBody.self, from: $0) })
        case "retrain": (Self.retrain, { _ = try API.decodeJSON(RetrainBody.self, from: $0) })
        case "challenger": (Self.challenger, { _ = try API.decodeJSON(ChallengerBody.self, from: $0) })
        case "rollback": (Self.rollback, { _ = try API.decodeJSON(RollbackBody.self, from: $0) })
        case "exploration": (Self.exploration, { _ = try API.decodeJSON(ExplorationBody.self, from: $0) })
        default: (Self.evaluatePolicy, { _ = try API.decodeJSON(EvaluatePolicyBody.self, from: $0) })
        }
        let forms = [
            #"^the request needs a JSON body$"#, #"^the body is not valid JSON$"#,
            #"^(the body|[a-z_]+(\.[0-9]+(\.[a-z_]+)?)?) must be (a JSON object|an integer|a number|true or false|a string|a string or an integer|an array of [A-Za-z (),]+)( from -?[0-9]+ to [0-9]+| a 64-bit float can hold)?(, not null)?$"#,
            #"^[a-z_]+(\.[0-9]+\.[a-z_]+)? is missing: it must be [A-Za-z (),]+$"#,
            #"^unknown field `[^`]*` \(the fields are [a-z_, ]+\)$"#, #"^field `[^`]*` appears twice$"#,
        ].map { try! Regex($0) }
        for body in corpus {
            let error: any Error
            do {
                try read(ByteBuffer(bytes: body.bytes))
                continue
            } catch let e {
                error = e
            }
            let message = APIError.from(error).message
            #expect(forms.contains { message.wholeMatch(of: $0) != nil }, "\(endpoint) \(body.testDescription): \(message)")
            for token in ["Expected", "Dictionary", "Array<", "Int64", "UInt64", "Double", "Swift", "representable", "Optional", "CodingKeys"] {
                #expect(!message.contains(token), "\(endpoint) \(body.testDescription): \(message)")
            }
            if (try? JSONSerialization.jsonObject(with: Data(body.bytes), options: [.fragmentsAllowed])) != nil {
                #expect(message != "the body is not valid JSON", "\(endpoint) \(body.testDescription) is JSON")
            }
        }
    }

    /// The direct reader keeps the hot path off `JSONDecoder` for the bodies clients send: were it
    /// to hand these over, the answers would stay right and only the speed would suffer, which
    /// the tests above could not see.
    @Test(arguments: [
        #"{}"#, #"{"k":10}"#, #"{"k":3,"items":["i1",7,"i3"]}"#, #"{"k":2,"exclude":["a"],"exclude_observed":true,"explore":false}"#,
    ])
    func theDirectReaderReadsPlainTopKBodies(_ text: String) {
        #expect(PlainReader.topK(in: ByteBuffer(string: text)) != nil)
    }

    @Test(arguments: [
        #"{"item":"i1","label":4}"#, #"{"item":17,"label":-0.25,"event_id":"3f09a1c2b7e4-00000000001a"}"#, #"{"label":4.5,"item":"i1"}"#,
    ])
    func theDirectReaderReadsPlainObserveBodies(_ text: String) {
        #expect(PlainReader.observe(in: ByteBuffer(string: text)) != nil)
    }

    /// The duplicate-key scan itself, on keys `JSONDecoder` reads as equal however they are spelt.
    @Test(arguments: [
        (#"{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}"#, nil),
        (#"{"a":1,"a":2}"#, "a"),
        (#"{"a":{"b":1,"c":{"d":[1,{"e":1,"e":2}]}}}"#, "a.c.d.1.e"),
        (#"{"x":[{"u":1},{"u":1,"v":"\"u\":","u":2}]}"#, "x.1.u"),
        (#"{"\u00e9":1,"é":2}"#, "é"),
        (#"{"\ud83d\ude00":1,"😀":2}"#, "😀"),
        (#"{"a\\":1,"a\\\\":2,"a\\":3}"#, "a\\"),
        (#"{"":1,"":2}"#, ""),
    ] as [(String, String?)])
    func duplicateKeysAreFound(_ text: String, _ expected: String?) {
        #expect(DuplicateKeys.first(in: Array(text.utf8)) == expected, "\(text)")
    }
}
