import Foundation

/// Reading a request body as openapi.yaml describes it, on top of `JSONDecoder`: every request
/// schema has `additionalProperties: false` and no nullable field, so a field the schema does not
/// define and an explicit `null` are errors rather than silently ignored (a misspelt
/// `"exclude_observd": true` would otherwise rank as if it were not there). `JSONDecoder` alone
/// ignores unknown keys, reads `null` as absent in `decodeIfPresent`, and reports an integer out
/// of range as malformed JSON; these helpers make each of those a 400 naming the field.
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

/// How ``APIError/describe(_:)`` recognizes the errors these helpers raise.
enum StrictDecoding {
    /// The start of the `debugDescription` of an unknown field's error; the known fields follow.
    static let unknownField = "unknown field; the fields are "
}

extension Decoder {
    /// The body object's container, once every key in it is one of `Key`'s.
    /// - Throws: `DecodingError.dataCorrupted` at the first unknown key (its path names it), or
    ///   what getting a keyed container throws (for a body that is not an object).
    func strictContainer<Key: CodingKey & CaseIterable>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        let all = try container(keyedBy: FieldKey.self)
        for key in all.allKeys where Key(stringValue: key.stringValue) == nil {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key],
                debugDescription: StrictDecoding.unknownField + Key.allCases.map(\.stringValue).joined(separator: ", ")))
        }
        return try container(keyedBy: Key.self)
    }
}

extension KeyedDecodingContainer {
    /// A required field.
    /// - Throws: `valueNotFound` for a `null` (whatever `T` would make of it), `keyNotFound`
    ///   when it is absent, what decoding `T` throws otherwise.
    func value<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try rejectNull(key)
        return try decode(T.self, forKey: key)
    }

    /// An optional field: nil when absent. Unlike `decodeIfPresent`, a `null` is an error
    /// (`valueNotFound`), as the schema's optional fields are not nullable.
    func optional<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        return try value(T.self, forKey: key)
    }

    /// A required integer field.
    /// - Throws: `dataCorrupted` naming the field and `T`'s range for a number that is not an
    ///   integer of `T` (`JSONDecoder` would call the whole body malformed), the usual
    ///   `DecodingError`s otherwise.
    func integer<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try rejectNull(key)
        do {
            return try decode(T.self, forKey: key)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw DecodingError.dataCorrupted(.init(
                codingPath: codingPath + [key], debugDescription: "expected an integer from \(T.min) to \(T.max)"))
        }
    }

    /// An optional integer field: nil when absent; `null` and numbers out of range are errors.
    func optionalInteger<T: FixedWidthInteger & Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard contains(key) else { return nil }
        return try integer(T.self, forKey: key)
    }

    /// A required number field.
    /// - Throws: `dataCorrupted` naming the field for a number beyond `Double`'s range.
    func number(forKey key: Key) throws -> Double {
        try rejectNull(key)
        do {
            return try decode(Double.self, forKey: key)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: codingPath + [key], debugDescription: "expected a finite number"))
        }
    }

    /// Throws `valueNotFound` when the field is present and `null` (`JSONDecoder` reports a
    /// `null` where a Bool or String belongs as a type mismatch, where a number as missing).
    private func rejectNull(_ key: Key) throws {
        guard contains(key), try decodeNil(forKey: key) else { return }
        throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath + [key], debugDescription: "null"))
    }
}
