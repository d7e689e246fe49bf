/// The request bodies of the endpoints the router alone answers (bulk ingest, exploration,
/// retraining and versions), each read as its schema in openapi.yaml says: no field it does not
/// define, no `null`, integers within their type (StrictDecoding.swift). The hot endpoints'
/// bodies, which the fast path reads too, are in RequestBodies.swift.
struct BulkObservation: BodyFieldType {
    let uid: WireID
    let item: WireID
    let label: Double
    let eventId: String?
    let observationId: String?

    static var expected: String { "a JSON object" }
    static var plural: String { "observations (JSON objects)" }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case uid, item, label
        case eventId = "event_id"
        case observationId = "observation_id"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        uid = try c.value(WireID.self, forKey: .uid)
        item = try c.value(WireID.self, forKey: .item)
        label = try c.number(forKey: .label)
        eventId = try c.optional(String.self, forKey: .eventId)
        observationId = try c.optional(String.self, forKey: .observationId)
    }
}

struct BulkObserveBody: Decodable {
    let observations: [BulkObservation]

    enum CodingKeys: String, CodingKey, CaseIterable {
        case observations
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        observations = try c.value([BulkObservation].self, forKey: .observations)
    }
}

struct ExplorationBody: Decodable {
    let policy: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case policy
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        policy = try c.value(String.self, forKey: .policy)
    }
}

struct EvaluatePolicyBody: Decodable {
    let policy: String
    let version: Int?
    let limit: Int?
    let samples: Int?
    let seed: UInt64?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case policy, version, limit, samples, seed
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        policy = try c.value(String.self, forKey: .policy)
        version = try c.optionalInteger(Int.self, forKey: .version)
        limit = try c.optionalInteger(Int.self, forKey: .limit)
        samples = try c.optionalInteger(Int.self, forKey: .samples)
        seed = try c.optionalInteger(UInt64.self, forKey: .seed)
    }
}

struct RetrainBody: Decodable {
    let wait: Bool?
    /// Compete with the serving version under this allocation instead of replacing it.
    let challenger: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case wait, challenger
    }

    init(wait: Bool?, challenger: String?) {
        self.wait = wait
        self.challenger = challenger
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        wait = try c.optional(Bool.self, forKey: .wait)
        challenger = try c.optional(String.self, forKey: .challenger)
    }
}

struct ChallengerBody: Decodable {
    let version: Int
    let allocation: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version, allocation
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        version = try c.integer(Int.self, forKey: .version)
        allocation = try c.optional(String.self, forKey: .allocation)
    }
}

struct RollbackBody: Decodable {
    let version: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case version
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        version = try c.integer(Int.self, forKey: .version)
    }
}

/// `POST /v1/models`: an empty model (``EmptyModel``).
struct CreateModelBody: Decodable {
    let name: String
    let dimension: Int
    let lambda: Double?
    let mean: Double?
    let numeric: [String: NumericScaleBody]?
    let exploration: String?

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, dimension, lambda, mean, numeric, exploration
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        name = try c.value(String.self, forKey: .name)
        dimension = try c.integer(Int.self, forKey: .dimension)
        lambda = c.contains(.lambda) ? try c.number(forKey: .lambda) : nil
        mean = c.contains(.mean) ? try c.number(forKey: .mean) : nil
        exploration = try c.optional(String.self, forKey: .exploration)
        guard c.contains(.numeric) else { numeric = nil; return }
        if try c.decodeNil(forKey: .numeric) { throw BodyError.null(at: [CodingKeys.numeric], expected: "an object") }
        let scales: KeyedDecodingContainer<FieldKey>
        do {
            scales = try c.nestedContainer(keyedBy: FieldKey.self, forKey: .numeric)
        } catch is DecodingError {
            throw BodyError.wrongType(at: [CodingKeys.numeric], expected: "an object of attribute names to {mean, deviation}")
        }
        var out: [String: NumericScaleBody] = [:]
        for key in scales.allKeys { out[key.stringValue] = try NumericScaleBody(from: try scales.superDecoder(forKey: key)) }
        numeric = out
    }
}

/// A numeric attribute's scale: `{"mean": 2000, "deviation": 10}`.
struct NumericScaleBody: Decodable {
    let mean: Double
    let deviation: Double

    enum CodingKeys: String, CodingKey, CaseIterable {
        case mean, deviation
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        mean = try c.number(forKey: .mean)
        deviation = try c.number(forKey: .deviation)
    }
}
