import Foundation
import Hummingbird
import OspreyEngine

/// A uid or item id: a JSON string, or a JSON integer read as its decimal string, as openapi.yaml has it.
struct WireID: BodyFieldType, Equatable {
    let value: String

    static var expected: String { "a string or an integer" }
    static var plural: String { "ids (strings or integers)" }

    init(_ value: String) {
        self.value = value
    }

    /// - Throws: ``BodyError`` for anything else (a fraction, an integer beyond 64 bits, `null`).
    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            value = s
        } else if let n = try? c.decode(Int64.self) {
            value = String(n)
        } else if c.decodeNil() {
            throw BodyError.null(at: c.codingPath, expected: Self.expected)
        } else if let x = try? c.decode(Double.self), x == x.rounded() {
            throw BodyError.wrongType(at: c.codingPath, expected: "a string or an integer from \(Int64.min) to \(Int64.max)")
        } else {
            throw BodyError.wrongType(at: c.codingPath, expected: Self.expected)
        }
    }
}

struct ObserveBody: Decodable, Equatable {
    let item: WireID
    let label: Double
    let eventId: String?
    /// The client's id for the observation: a retry with it is acknowledged, not logged twice.
    let observationId: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case item, label
        case eventId = "event_id"
        case observationId = "observation_id"
    }

    init(item: WireID, label: Double, eventId: String?, observationId: String? = nil) {
        self.item = item
        self.label = label
        self.eventId = eventId
        self.observationId = observationId
    }

    /// openapi.yaml's `ObserveRequest`: no other field, no `null` (StrictDecoding.swift).
    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        item = try c.value(WireID.self, forKey: .item)
        label = try c.number(forKey: .label)
        eventId = try c.optional(String.self, forKey: .eventId)
        observationId = try c.optional(String.self, forKey: .observationId)
    }

    /// Decodes an observe body as ``TopKBody/decode(from:)`` decodes a top-k one: the plain shapes
    /// directly (a label with an optional sign and fraction, no exponent), the rest with `JSONDecoder`.
    /// - Throws: 400 for an empty body, malformed JSON, or a field the schema does not allow.
    static func decode(from buffer: ByteBuffer) throws -> ObserveBody {
        if let body = PlainReader.observe(in: buffer) { return body }
        return try API.decodeJSON(ObserveBody.self, from: buffer)
    }

    /// The feedback this body gives on user `uid`, unchecked: the ingestor checks it
    /// (``Ingestor/observe(model:_:completion:)``), on the fast path and the router alike.
    func feedback(uid: String) -> Feedback {
        Feedback(uid: uid, item: item.value, label: label, eventId: eventId, observationId: observationId)
    }
}

struct TopKBody: Decodable, Equatable {
    let k: Int?
    let items: [WireID]?
    let exclude: [WireID]?
    let excludeObserved: Bool?
    /// false: a pure (greedy) ranking whatever the model's exploration policy.
    let explore: Bool?
    /// Items the model does not hold, with their attributes: ranked too, not stored.
    let inlineItems: [ItemEntry]?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case k, items, exclude, explore
        case excludeObserved = "exclude_observed"
        case inlineItems = "inline_items"
    }

    /// openapi.yaml's `TopKRequest`: no other field, no `null` (StrictDecoding.swift).
    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        k = try c.optionalInteger(Int.self, forKey: .k)
        items = try c.optional([WireID].self, forKey: .items)
        exclude = try c.optional([WireID].self, forKey: .exclude)
        excludeObserved = try c.optional(Bool.self, forKey: .excludeObserved)
        explore = try c.optional(Bool.self, forKey: .explore)
        inlineItems = try c.optional([ItemEntry].self, forKey: .inlineItems)
    }

    /// Candidate lists from this long are scored on the server's scan pool rather than on an
    /// event loop (about 10 µs of scoring at d = 50, several times the cost of the hand-over).
    static let scannedCandidates = 256

    /// The ranking scores the whole catalogue or a long candidate list (``scannedCandidates``).
    var scansMany: Bool { (items?.count ?? .max) >= Self.scannedCandidates }

    /// Decodes a top-k body: the plain shapes (an object of known keys, each once; integers
    /// without sign, zeros or exponent; ASCII strings without escapes; true and false) are read
    /// directly, which costs a fraction of `JSONDecoder` on this hot path; anything else — and
    /// so every malformed or unknown field, `null` and repeated key, with its error message —
    /// goes to `JSONDecoder` and the strict reading of StrictDecoding.swift, so the two agree on
    /// every body the direct reader accepts (RequestParserEquivalenceTests checks it).
    /// - Throws: 400 for an empty body, malformed JSON, or a field the schema does not allow.
    static func decode(from buffer: ByteBuffer) throws -> TopKBody {
        if let body = PlainReader.topK(in: buffer) { return body }
        return try API.decodeJSON(TopKBody.self, from: buffer)
    }

    init(k: Int?, items: [WireID]?, exclude: [WireID]?, excludeObserved: Bool?, explore: Bool?, inlineItems: [ItemEntry]? = nil) {
        self.k = k
        self.items = items
        self.exclude = exclude
        self.excludeObserved = excludeObserved
        self.explore = explore
        self.inlineItems = inlineItems
    }
}

/// The direct reader behind ``TopKBody/decode(from:)`` and ``ObserveBody/decode(from:)``: nil as
/// soon as the body is not one of the plain shapes it reads. It reads in place and allocates only
/// the values it returns.
struct PlainReader {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0

    private init(bytes: UnsafeBufferPointer<UInt8>) {
        self.bytes = bytes
    }

    /// A top-k body read directly, or nil when `JSONDecoder` must read it.
    static func topK(in buffer: ByteBuffer) -> TopKBody? {
        buffer.readableBytesView.withContiguousStorageIfAvailable { bytes in
            var reader = PlainReader(bytes: bytes)
            return reader.topK()
        } ?? nil
    }

    /// An observe body read directly, or nil when `JSONDecoder` must read it.
    static func observe(in buffer: ByteBuffer) -> ObserveBody? {
        buffer.readableBytesView.withContiguousStorageIfAvailable { bytes in
            var reader = PlainReader(bytes: bytes)
            return reader.observe()
        } ?? nil
    }

    private mutating func topK() -> TopKBody? {
        var k: Int?, items: [WireID]?, exclude: [WireID]?, excludeObserved: Bool?, explore: Bool?
        guard take(UInt8(ascii: "{")) else { return nil }
        if !take(UInt8(ascii: "}")) {
            repeat {
                guard let key = string(), take(UInt8(ascii: ":")) else { return nil }
                switch key {
                case "k" where k == nil: guard let v = integer() else { return nil }; k = v
                case "items" where items == nil: guard let v = ids() else { return nil }; items = v
                case "exclude" where exclude == nil: guard let v = ids() else { return nil }; exclude = v
                case "exclude_observed" where excludeObserved == nil: guard let v = boolean() else { return nil }; excludeObserved = v
                case "explore" where explore == nil: guard let v = boolean() else { return nil }; explore = v
                default: return nil
                }
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "}")) else { return nil }
        }
        skipSpace()
        guard i == bytes.count else { return nil }
        return TopKBody(k: k, items: items, exclude: exclude, excludeObserved: excludeObserved, explore: explore)
    }

    private mutating func observe() -> ObserveBody? {
        var item: WireID?, label: Double?, eventId: String?, observationId: String?
        guard take(UInt8(ascii: "{")), !take(UInt8(ascii: "}")) else { return nil }
        repeat {
            guard let key = string(), take(UInt8(ascii: ":")) else { return nil }
            switch key {
            case "item" where item == nil: guard let v = id() else { return nil }; item = v
            case "label" where label == nil: guard let v = decimal() else { return nil }; label = v
            case "event_id" where eventId == nil: guard let v = string() else { return nil }; eventId = v
            case "observation_id" where observationId == nil: guard let v = string() else { return nil }; observationId = v
            default: return nil
            }
        } while take(UInt8(ascii: ","))
        guard take(UInt8(ascii: "}")), let item, let label else { return nil }
        skipSpace()
        guard i == bytes.count else { return nil }
        return ObserveBody(item: item, label: label, eventId: eventId, observationId: observationId)
    }

    /// A number with an optional minus sign and fraction, no exponent, at most 30 characters.
    private mutating func decimal() -> Double? {
        skipSpace()
        let start = i
        if i < bytes.count, bytes[i] == UInt8(ascii: "-") { i += 1 }
        let digitsStart = i
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
        let whole = i - digitsStart
        guard whole > 0, whole == 1 || bytes[digitsStart] != UInt8(ascii: "0") else { return nil }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            let fractionStart = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            guard i > fractionStart else { return nil }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") { return nil }
        guard i - start <= 30 else { return nil }
        return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    /// An id: a string, or an integer read as its decimal string.
    private mutating func id() -> WireID? {
        skipSpace()
        guard i < bytes.count else { return nil }
        if bytes[i] == UInt8(ascii: "\"") { return string().map(WireID.init) }
        return digits().map { WireID(String($0)) }
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    /// Skips whitespace, then consumes `byte` if it is next.
    private mutating func take(_ byte: UInt8) -> Bool {
        skipSpace()
        guard i < bytes.count, bytes[i] == byte else { return false }
        i += 1
        return true
    }

    /// A string of printable ASCII without escapes.
    private mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = i
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") {
                defer { i += 1 }
                return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
            }
            guard b >= 0x20, b < 0x7F, b != UInt8(ascii: "\\") else { return nil }
            i += 1
        }
        return nil
    }

    /// A non-negative integer without leading zeros that fits an `Int`, as digits.
    private mutating func digits() -> Substring? {
        skipSpace()
        let start = i
        while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
        let n = i - start
        guard n > 0, n <= 18, n == 1 || bytes[start] != UInt8(ascii: "0") else { return nil }
        // Not the start of a fraction or an exponent.
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") { return nil }
        return Substring(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self))
    }

    private mutating func integer() -> Int? { digits().flatMap { Int($0) } }

    private mutating func boolean() -> Bool? {
        skipSpace()
        for (word, value) in [("true", true), ("false", false)] where bytes.count - i >= word.utf8.count {
            if word.utf8.elementsEqual(bytes[i..<(i + word.utf8.count)]) {
                i += word.utf8.count
                return value
            }
        }
        return nil
    }

    /// An array of ids: strings, or integers read as their decimal strings.
    private mutating func ids() -> [WireID]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var out: [WireID] = []
        if take(UInt8(ascii: "]")) { return out }
        repeat {
            guard let id = id() else { return nil }
            out.append(id)
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "]")) ? out : nil
    }
}

extension Request {
    /// Decodes a JSON body of at most `limit` bytes.
    /// - Throws: 413 over the limit, 400 for an empty body or malformed JSON.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int, emptyAs empty: T? = nil) async throws -> T {
        try API.decodeJSON(T.self, from: try await body.collect(upTo: limit), emptyAs: empty)
    }
}

extension API {
    /// Decodes a JSON body with `JSONDecoder`, then rejects one with a key repeated within an
    /// object (``DuplicateKeys``), which `JSONDecoder` would read as its first value.
    /// - Throws: 400 for an empty body (unless `empty` stands in for it), malformed JSON, a
    ///   repeated key, and what `T`'s decoding throws (a missing, unknown, null or wrong-typed field).
    static func decodeJSON<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer, emptyAs empty: T? = nil) throws -> T {
        guard buffer.readableBytes > 0 else {
            if let empty { return empty }
            throw APIError.badRequest("the request needs a JSON body")
        }
        let data = Data(buffer.readableBytesView)
        let value = try JSONDecoder().decode(T.self, from: data)
        if let key = DuplicateKeys.first(in: data) { throw APIError.badRequest("field `\(key)` appears twice") }
        return value
    }
}
