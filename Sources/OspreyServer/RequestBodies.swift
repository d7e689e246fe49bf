import Foundation
import Hummingbird

/// A uid or item id: a JSON string, or a JSON integer read as its decimal string (DESIGN.md §5).
struct WireID: Decodable {
    let value: String

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            value = s
        } else if let n = try? c.decode(Int64.self) {
            value = String(n)
        } else {
            throw DecodingError.typeMismatch(String.self, .init(codingPath: c.codingPath, debugDescription: "expected a string or an integer id"))
        }
    }
}

struct ObserveBody: Decodable {
    let item: WireID
    let label: Double
    let eventId: String?

    enum CodingKeys: String, CodingKey {
        case item, label
        case eventId = "event_id"
    }
}

struct BulkObservation: Decodable {
    let uid: WireID
    let item: WireID
    let label: Double
    let eventId: String?

    enum CodingKeys: String, CodingKey {
        case uid, item, label
        case eventId = "event_id"
    }
}

struct ExplorationBody: Decodable {
    let policy: String
}

struct EvaluatePolicyBody: Decodable {
    let policy: String
    let version: Int?
    let limit: Int?
    let samples: Int?
    let seed: UInt64?
}

struct BulkObserveBody: Decodable {
    let observations: [BulkObservation]
}

struct RetrainBody: Decodable {
    let wait: Bool?
    /// Compete with the serving version under this allocation instead of replacing it.
    let challenger: String?
}

struct ChallengerBody: Decodable {
    let version: Int
    let allocation: String?
}

struct RollbackBody: Decodable {
    let version: Int
}

struct TopKBody: Decodable {
    let k: Int?
    let items: [WireID]?
    let exclude: [WireID]?
    let excludeObserved: Bool?
    /// false: a pure (greedy) ranking whatever the model's exploration policy.
    let explore: Bool?

    enum CodingKeys: String, CodingKey {
        case k, items, exclude, explore
        case excludeObserved = "exclude_observed"
    }
}

extension Request {
    /// Decodes a JSON body of at most `limit` bytes.
    /// - Throws: 413 over the limit, 400 for an empty body or malformed JSON.
    func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int, emptyAs empty: T? = nil) async throws -> T {
        let buffer = try await body.collect(upTo: limit)
        guard buffer.readableBytes > 0 else {
            if let empty { return empty }
            throw APIError.badRequest("the request needs a JSON body")
        }
        return try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView))
    }
}

extension Double {
    /// The label as a Float, or nil when it is not finite as a Float.
    var finiteLabel: Float? {
        let f = Float(self)
        return f.isFinite ? f : nil
    }
}
