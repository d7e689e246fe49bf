import Foundation

/// Reading a request body as openapi.yaml describes it, on top of `JSONDecoder`: every request
/// schema has `additionalProperties: false` and no nullable field, so a field the schema does not
/// define and an explicit `null` are errors rather than silently ignored (a misspelt
/// `"exclude_observd": true` would otherwise rank as if it were not there). `JSONDecoder` alone
/// ignores unknown keys, reads `null` as absent in `decodeIfPresent`, and reports an integer out
/// of range as malformed JSON; these helpers make each of those a ``BodyError``, a 400 naming the
/// field and the type its schema gives it in the API's own words (`k must be an integer`), never
/// in `JSONDecoder`'s (`Expected to decode Int but found a string instead`).
struct FieldKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(stringValue: String) {
        self.stringValue = stringValue
        intValue = nil
    }

    init(intValue: Int) {
        stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// A request body that is not what its schema says, told in the API's words: the field's path in
/// the body (`k`, `observations.3.label`, or `the body` itself) and what it must be.
struct BodyError: Error, CustomStringConvertible, Equatable {
    let description: String

    /// A field's path as messages show it: `observations.3.label`; `the body` for the body itself.
    static func name(_ path: [any CodingKey]) -> String {
        path.isEmpty ? "the body" : path.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
    }

    /// `k must be an integer`.
    static func wrongType(at path: [any CodingKey], expected: String) -> Self {
        .init(description: "\(name(path)) must be \(expected)")
    }

    /// `explore must be true or false, not null`.
    static func null(at path: [any CodingKey], expected: String) -> Self {
        .init(description: "\(name(path)) must be \(expected), not null")
    }

    /// `label is missing: it must be a number`.
    static func missing(at path: [any CodingKey], expected: String) -> Self {
        .init(description: "\(name(path)) is missing: it must be \(expected)")
    }

    /// ``unknown field `extra` (the fields are item, label, event_id, observation_id)``.
    static func unknown(at path: [any CodingKey], fields: [String]) -> Self {
        .init(description: "unknown field `\(name(path))` (the fields are \(fields.joined(separator: ", ")))")
    }
}

/// A type a request body's field holds, named as openapi.yaml's schemas give it, for
/// ``BodyError``s.
protocol BodyFieldType: Decodable {
    /// What a field of this type must be: `an integer`.
    static var expected: String { get }
    /// The elements of an array of this type: `integers`.
    static var plural: String { get }
}

extension Int: BodyFieldType {
    static var expected: String { "an integer" }
    static var plural: String { "integers" }
}

extension UInt64: BodyFieldType {
    static var expected: String { "an integer" }
    static var plural: String { "integers" }
}

extension Double: BodyFieldType {
    static var expected: String { "a number" }
    static var plural: String { "numbers" }
}

extension Bool: BodyFieldType {
    static var expected: String { "true or false" }
    static var plural: String { "booleans" }
}

extension String: BodyFieldType {
    static var expected: String { "a string" }
    static var plural: String { "strings" }
}

extension Array: BodyFieldType where Element: BodyFieldType {
    static var expected: String { "an array of \(Element.plural)" }
    static var plural: String { "arrays of \(Element.plural)" }
}

extension Decoder {
    /// The body object's container, once every key in it is one of `Key`'s.
    /// - Throws: ``BodyError`` when the value is not a JSON object or has a key `Key` does not
    ///   define (the first, by its path).
    func strictContainer<Key: CodingKey & CaseIterable>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let all: KeyedDecodingContainer<FieldKey>
        do {
            all = try container(keyedBy: FieldKey.self)
        } catch {
            let isNull = (try? singleValueContainer().decodeNil()) == true
            throw isNull ? BodyError.null(at: codingPath, expected: "a JSON object")
                : BodyError.wrongType(at: codingPath, expected: "a JSON object")
        }
        for key in all.allKeys where Key(stringValue: key.stringValue) == nil {
            throw BodyError.unknown(at: codingPath + [key], fields: Key.allCases.map(\.stringValue))
        }
        return try container(keyedBy: Key.self)
    }
}

extension KeyedDecodingContainer {
    /// A required field.
    /// - Throws: ``BodyError`` when it is absent, `null`, or not a `T` (what decoding a value
    ///   inside it throws, for a value inside it).
    func value<T: BodyFieldType>(_ type: T.Type, forKey key: Key) throws -> T {
        try present(key, expected: T.expected)
        do {
            return try decode(T.self, forKey: key)
        } catch let error as BodyError {
            throw error
        } catch let error as DecodingError where error.path.count > codingPath.count + 1 {
            throw error  // about a value inside the field, which its own decoding names
        } catch {
            throw BodyError.wrongType(at: codingPath + [key], expected: T.expected)
        }
    }

    /// An optional field: nil when absent. Unlike `decodeIfPresent`, a `null` is an error, as
    /// the schema's optional fields are not nullable.
    /// - Throws: ``BodyError`` when it is `null` or not a `T`.
    func optional<T: BodyFieldType>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        return try value(T.self, forKey: key)
    }

    /// A required integer field.
    /// - Throws: ``BodyError`` when it is absent, `null`, not an integer (`2.5`, `"10"`), or an
    ///   integer `T` cannot hold (`JSONDecoder` would call the whole body malformed), naming `T`'s
    ///   range then.
    func integer<T: FixedWidthInteger & BodyFieldType>(_ type: T.Type, forKey key: Key) throws -> T {
        try present(key, expected: T.expected)
        do {
            return try decode(T.self, forKey: key)
        } catch is DecodingError {
            throw BodyError.wrongType(at: codingPath + [key], expected: T.expected)
        } catch {
            // A number T cannot hold: a fraction, or an integer beyond T's range.
            if let x = try? decode(Double.self, forKey: key), x != x.rounded() {
                throw BodyError.wrongType(at: codingPath + [key], expected: T.expected)
            }
            throw BodyError.wrongType(at: codingPath + [key], expected: "\(T.expected) from \(T.min) to \(T.max)")
        }
    }

    /// An optional integer field: nil when absent; `null`, other types and numbers out of range
    /// are errors (``integer(_:forKey:)``).
    func optionalInteger<T: FixedWidthInteger & BodyFieldType>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        return try integer(T.self, forKey: key)
    }

    /// A required number field.
    /// - Throws: ``BodyError`` when it is absent, `null`, not a number, or a number a Double
    ///   cannot hold (`1e400`, `1e-400`).
    func number(forKey key: Key) throws -> Double {
        try present(key, expected: Double.expected)
        do {
            return try decode(Double.self, forKey: key)
        } catch is DecodingError {
            throw BodyError.wrongType(at: codingPath + [key], expected: Double.expected)
        } catch {
            throw BodyError.wrongType(at: codingPath + [key], expected: "a number a 64-bit float can hold")
        }
    }

    /// Throws when the field is absent or `null` (`JSONDecoder` reports a `null` where a Bool
    /// belongs as a type mismatch, where a number or string as missing).
    private func present(_ key: Key, expected: String) throws {
        guard contains(key) else { throw BodyError.missing(at: codingPath + [key], expected: expected) }
        if try decodeNil(forKey: key) { throw BodyError.null(at: codingPath + [key], expected: expected) }
    }
}

extension DecodingError {
    /// The path of the value this error is about.
    var path: [any CodingKey] {
        switch self {
        case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): c.codingPath
        case .keyNotFound(let key, let c): c.codingPath + [key]
        @unknown default: []
        }
    }
}
