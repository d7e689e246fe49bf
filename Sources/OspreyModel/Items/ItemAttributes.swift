import Foundation

/// One attribute value of a catalogue item: a string (a category or a text), a number, or a list
/// of strings (tags, genres). On the wire it is the JSON value itself.
public enum AttributeValue: Sendable, Hashable, Codable {
    case string(String)
    case number(Double)
    case strings([String])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let x = try? c.decode(Double.self) {
            self = .number(x)
        } else if let list = try? c.decode([String].self) {
            self = .strings(list)
        } else {
            throw DecodingError.typeMismatch(
                AttributeValue.self,
                .init(codingPath: c.codingPath, debugDescription: "an attribute value is a string, a number or a list of strings"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .string(let s): try c.encode(s)
        case .number(let x): try c.encode(x)
        case .strings(let list): try c.encode(list)
        }
    }
}

/// An item's attributes by name (Velox's item data `x`): what a computed feature function maps to
/// a vector, so an item can be scored before anyone has rated it.
public typealias ItemAttributes = [String: AttributeValue]

/// An item of a model's catalogue: its id, its attributes, and whether it is hidden (never in a
/// top-k answer, still scored by predict).
public struct CatalogueItem: Sendable, Equatable, Codable {
    public var id: String
    public var attributes: ItemAttributes
    public var hidden: Bool

    public init(id: String, attributes: ItemAttributes = [:], hidden: Bool = false) {
        self.id = id
        self.attributes = attributes
        self.hidden = hidden
    }
}

/// What a catalogue item's attributes may hold, wherever they come in (the HTTP API and items
/// files alike): how many, how long a name or a value, and finite numbers only.
public struct AttributeRules: Sendable, Equatable {
    /// The most attributes one item may have.
    public var maxAttributes: Int
    /// The longest attribute name, in code points.
    public var maxNameLength: Int
    /// The longest string value (or list entry), in code points.
    public var maxValueLength: Int
    /// The most entries in one list value.
    public var maxListCount: Int

    public static let `default` = AttributeRules()

    public init(maxAttributes: Int = 64, maxNameLength: Int = 128, maxValueLength: Int = 1_024, maxListCount: Int = 64) {
        self.maxAttributes = maxAttributes
        self.maxNameLength = maxNameLength
        self.maxValueLength = maxValueLength
        self.maxListCount = maxListCount
    }

    /// Checks `attributes`, naming the first offending one as `field.name` (or `field.name.3` for
    /// a list entry). O(total length).
    /// - Throws: ``InputRuleViolation``.
    public func check(_ attributes: ItemAttributes, field: String = "attributes") throws(InputRuleViolation) {
        guard attributes.count <= maxAttributes else {
            throw InputRuleViolation(field: field, problem: "has \(attributes.count) attributes; at most \(maxAttributes) are allowed")
        }
        // Sorted, so the error names the same attribute whatever the dictionary's order.
        for name in attributes.keys.sorted() {
            guard !name.isEmpty else { throw InputRuleViolation(field: field, problem: "has an attribute with an empty name") }
            let named = "\(field).\(name)"
            guard !name.utf8.contains(0) else { throw InputRuleViolation(field: named, problem: "name must not contain NUL (U+0000)") }
            guard name.unicodeScalars.count <= maxNameLength else {
                throw InputRuleViolation(field: field, problem: "has an attribute name longer than \(maxNameLength) characters")
            }
            switch attributes[name]! {
            case .string(let s):
                try check(string: s, field: named)
            case .number(let x):
                guard x.isFinite else { throw InputRuleViolation(field: named, problem: "must be a finite number") }
            case .strings(let list):
                guard list.count <= maxListCount else {
                    throw InputRuleViolation(field: named, problem: "has \(list.count) values; at most \(maxListCount) are allowed")
                }
                for (k, s) in list.enumerated() { try check(string: s, field: "\(named).\(k)") }
            }
        }
    }

    private func check(string s: String, field: String) throws(InputRuleViolation) {
        guard !s.utf8.contains(0) else { throw InputRuleViolation(field: field, problem: "must not contain NUL (U+0000)") }
        guard s.utf8.count <= maxValueLength || s.unicodeScalars.count <= maxValueLength else {
            throw InputRuleViolation(field: field, problem: "must be at most \(maxValueLength) characters long")
        }
    }
}
