/// What an identifier and a label must be, wherever one comes in: the HTTP API's bodies, paths
/// and query parameters (on the fast path and the router alike) and the ratings files
/// ``RatingsReader`` reads for `osprey train` and `osprey evaluate`. One definition, so that
/// nothing a training file holds would be refused by the server, and nothing the server accepts
/// would be refused by a training file (docs/operations.md, "Errors and edge cases").
public struct InputRules: Sendable, Equatable {
    /// The longest uid, item id or event id, in Unicode scalars (code points, as JSON Schema's
    /// `maxLength` counts them in openapi.yaml).
    public var maxIdentifierLength: Int
    /// The largest label magnitude: a label must lie in `-maxAbsLabel ... maxAbsLabel`. At most
    /// Float's largest finite value, as labels are stored as Float.
    public var maxAbsLabel: Double

    /// The default longest identifier, openapi.yaml's `maxLength`.
    public static let defaultMaxIdentifierLength = 256
    /// The default largest label magnitude, openapi.yaml's `Label` bounds.
    public static let defaultMaxAbsLabel = 1_000_000.0

    /// - Precondition: `maxIdentifierLength` ≥ 1; `maxAbsLabel` is positive and at most
    ///   `Float.greatestFiniteMagnitude`.
    public init(maxIdentifierLength: Int = defaultMaxIdentifierLength, maxAbsLabel: Double = defaultMaxAbsLabel) {
        precondition(maxIdentifierLength >= 1, "maxIdentifierLength must be at least 1")
        precondition(maxAbsLabel > 0 && maxAbsLabel <= Double(Float.greatestFiniteMagnitude),
                     "maxAbsLabel must be positive and at most Float's largest finite value")
        self.maxIdentifierLength = maxIdentifierLength
        self.maxAbsLabel = maxAbsLabel
    }

    /// Checks an identifier (a uid, an item id, an event id): not empty, without NUL, and at most
    /// ``maxIdentifierLength`` code points. O(its length in UTF-8 bytes).
    /// - Parameter field: how the error names it (`uid`, `item`, `items.3`).
    /// - Throws: ``InputRuleViolation`` naming `field`.
    public func check(id: String, field: String) throws(InputRuleViolation) {
        guard !id.isEmpty else { throw InputRuleViolation(field: field, problem: "must not be empty") }
        // NUL is reserved: a retrain window names its stand-in users with it
        // (OspreyEngine/Versions/RetrainRun.swift), so no real id may contain it.
        guard !id.utf8.contains(0) else { throw InputRuleViolation(field: field, problem: "must not contain NUL (U+0000)") }
        // Counted in code points, as openapi.yaml's maxLength counts; a string of at most that
        // many UTF-8 bytes has no more code points, so the count is skipped for it.
        guard id.utf8.count <= maxIdentifierLength || id.unicodeScalars.count <= maxIdentifierLength else {
            throw InputRuleViolation(field: field, problem: "must be at most \(maxIdentifierLength) characters long")
        }
    }

    /// Checks a label and returns it as stored: a number from `-maxAbsLabel` to `maxAbsLabel`
    /// (NaN and infinities are outside). The bound is checked on the Double, exactly as the
    /// schema states it: a Double just beyond it would round to it as a Float. O(1).
    /// - Throws: ``InputRuleViolation`` naming `field` and the limit.
    public func check(label: Double, field: String = "label") throws(InputRuleViolation) -> Float {
        guard abs(label) <= maxAbsLabel else {
            throw InputRuleViolation(field: field, problem: "must be a number from \(Self.text(-maxAbsLabel)) to \(Self.text(maxAbsLabel)), got \(Self.text(label))")
        }
        return Float(label)
    }

    /// A number as a message shows it: integers without a fraction (`1000000`, not `1000000.0`).
    static func text(_ x: Double) -> String {
        if x.isFinite, x == x.rounded(), abs(x) < 1e15 { return String(Int64(x)) }
        return "\(x)"
    }
}

/// An identifier or label that breaks ``InputRules``: which field, and what is wrong with it.
public struct InputRuleViolation: Error, CustomStringConvertible, Equatable {
    /// How the input names the value: `uid`, `item`, `label`, `items.3`.
    public let field: String
    /// What is wrong, as the rest of a sentence: `must not be empty`.
    public let problem: String

    public init(field: String, problem: String) {
        self.field = field
        self.problem = problem
    }

    /// `uid must not be empty`.
    public var description: String { "\(field) \(problem)" }
}
