import Hummingbird
import OspreyEngine
import OspreyModel

/// An item's attributes as a request carries them: a JSON object whose values are strings,
/// numbers or arrays of strings (openapi.yaml's `Attributes`). A nested object, a `null`, or an
/// array holding anything but strings is named by its path.
struct WireAttributes: BodyFieldType, Equatable {
    let value: ItemAttributes

    static var expected: String { "an object of attributes" }
    static var plural: String { "objects of attributes" }

    init(from decoder: any Decoder) throws {
        let c: KeyedDecodingContainer<FieldKey>
        do {
            c = try decoder.container(keyedBy: FieldKey.self)
        } catch {
            throw BodyError.wrongType(at: decoder.codingPath, expected: "an object whose values are strings, numbers or arrays of strings")
        }
        var out: ItemAttributes = [:]
        for key in c.allKeys {
            let path = decoder.codingPath + [key]
            let expected = "a string, a number or an array of strings"
            if try c.decodeNil(forKey: key) { throw BodyError.null(at: path, expected: expected) }
            if let s = try? c.decode(String.self, forKey: key) {
                out[key.stringValue] = .string(s)
            } else if let x = try? c.decode(Double.self, forKey: key) {
                out[key.stringValue] = .number(x)
            } else if var list = try? c.nestedUnkeyedContainer(forKey: key) {
                var values: [String] = []
                while !list.isAtEnd {
                    guard let s = try? list.decode(String.self) else {
                        throw BodyError.wrongType(at: path + [FieldKey(intValue: values.count)], expected: "a string")
                    }
                    values.append(s)
                }
                out[key.stringValue] = .strings(values)
            } else {
                throw BodyError.wrongType(at: path, expected: expected)
            }
        }
        value = out
    }
}

/// `PUT /v1/models/{model}/items/{item}`: openapi.yaml's `ItemRequest`.
struct ItemBody: Decodable {
    let attributes: WireAttributes

    enum CodingKeys: String, CodingKey, CaseIterable { case attributes }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        attributes = try c.value(WireAttributes.self, forKey: .attributes)
    }
}

/// One item of `POST /v1/models/{model}/items`: openapi.yaml's `ItemsRequest` entries.
struct ItemEntry: BodyFieldType, Equatable {
    let id: WireID
    let attributes: WireAttributes

    static var expected: String { "an item object" }
    static var plural: String { "item objects" }

    enum CodingKeys: String, CodingKey, CaseIterable { case id, attributes }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        id = try c.value(WireID.self, forKey: .id)
        attributes = try c.value(WireAttributes.self, forKey: .attributes)
    }
}

/// `POST /v1/models/{model}/items`: openapi.yaml's `ItemsRequest`.
struct ItemsBody: Decodable {
    let items: [ItemEntry]

    enum CodingKeys: String, CodingKey, CaseIterable { case items }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        items = try c.value([ItemEntry].self, forKey: .items)
    }
}

/// `POST /v1/models/{model}/users/{uid}/predict`: openapi.yaml's `PredictRequest`.
struct PredictBody: Decodable {
    let item: WireID
    let attributes: WireAttributes?

    enum CodingKeys: String, CodingKey, CaseIterable { case item, attributes }

    init(from decoder: any Decoder) throws {
        let c = try decoder.strictContainer(keyedBy: CodingKeys.self)
        item = try c.value(WireID.self, forKey: .item)
        attributes = try c.optional(WireAttributes.self, forKey: .attributes)
    }
}

/// An item as the API reports it (openapi.yaml's `Item`).
struct ItemResponse: APIResponse {
    let info: ItemInfo

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("item", info.id)
            w.key("attributes")
            w.object { w in
                for name in info.attributes.keys.sorted() {
                    w.key(name)
                    switch info.attributes[name]! {
                    case .string(let s): w.value(s)
                    case .number(let x): w.number(x)
                    case .strings(let list): w.array { w in for s in list { w.value(s) } }
                    }
                }
            }
            w.field("hidden", info.hidden)
            w.field("source", info.source.rawValue)
            if let observations = info.observations { w.field("observations", observations) }
            w.field("version", info.version)
        }
    }
}

/// `POST /v1/models/{model}/items`.
struct ItemsResponse: APIResponse {
    let accepted: Int

    func write(to w: inout JSONWriter) {
        w.object { w in w.field("accepted", accepted) }
    }
}

extension API {
    /// The most items one `POST /v1/models/{model}/items` may carry.
    static let maxItemsPerRequest = 10_000

    func putItem(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), item = try context.parameter("item")
        let body = try await request.decodeJSON(ItemBody.self, limit: configuration.maxBodyBytes)
        try manager.putItems(model: model, [(item, body.attributes.value)]) { _, field in field == "id" ? "item" : field }
        return ItemResponse(info: try manager.item(model: model, id: item)).response()
    }

    func putItems(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(ItemsBody.self, limit: configuration.maxBodyBytes)
        guard !body.items.isEmpty else { throw OspreyError(.invalidArgument, "items must not be empty") }
        guard body.items.count <= Self.maxItemsPerRequest else {
            throw OspreyError(.invalidArgument, "items holds \(body.items.count) items; send at most \(Self.maxItemsPerRequest) per request")
        }
        try manager.putItems(model: model, body.items.map { ($0.id.value, $0.attributes.value) })
        return ItemsResponse(accepted: body.items.count).response()
    }

    /// The most inline items one request may carry.
    static let maxInlineItems = 1_000

    /// Checks a request's inline items: ids, attributes, count.
    /// - Throws: ``OspreyError`` `invalidArgument` naming the field.
    func checkInline(_ items: [ItemEntry], field: String = "inline_items") throws -> [(id: String, attributes: ItemAttributes)] {
        guard items.count <= Self.maxInlineItems else {
            throw OspreyError(.invalidArgument, "\(field) holds \(items.count) items; send at most \(Self.maxInlineItems)")
        }
        for (n, item) in items.enumerated() {
            try check(id: item.id.value, "\(field).\(n).id")
            try check(attributes: item.attributes.value, "\(field).\(n).attributes")
        }
        return items.map { ($0.id.value, $0.attributes.value) }
    }

    /// Checks attributes by ``AttributeRules`` (the engine checks the items it stores by the same
    /// rules), as ``check(id:_:)`` checks ids.
    /// - Throws: ``OspreyError`` `invalidArgument` naming `field` and the attribute.
    func check(attributes: ItemAttributes, _ field: String) throws {
        do throws(InputRuleViolation) {
            try AttributeRules.default.check(attributes, field: field)
        } catch {
            throw OspreyError(error)
        }
    }

    /// `POST .../users/{uid}/predict`: the score of an item, given with its attributes when the
    /// model does not hold it.
    func predictInline(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        let body = try await request.decodeJSON(PredictBody.self, limit: configuration.maxBodyBytes)
        let item = body.item.value
        try check(id: uid, "uid")
        try check(id: item, "item")
        guard let attributes = body.attributes?.value else { return try predictAnswer(model: model, uid: uid, item: item).response() }
        try check(attributes: attributes, "attributes")
        return PredictResponse(uid: uid, item: item, prediction: try predictor.predict(model: model, uid: uid, item: item, attributes: attributes))
            .response()
    }

    func itemInfo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), item = try context.parameter("item")
        try check(id: item, "item")
        return ItemResponse(info: try manager.item(model: model, id: item)).response()
    }

    /// `POST .../items/{item}/hide` and `/show`.
    func setHidden(_ hidden: Bool) -> Handler {
        { request, context in
            let model = try context.parameter("model"), item = try context.parameter("item")
            try check(id: item, "item")
            try manager.setItemHidden(model: model, item: item, hidden: hidden)
            return ItemResponse(info: try manager.item(model: model, id: item)).response()
        }
    }
}
