/// A role an access token grants (docs/operations.md, "Access tokens"). Roles are ordered:
/// `admin` grants everything `write` does, and `write` everything `read` does.
public enum AccessRole: String, CaseIterable, Comparable, Sendable {
    /// predict, topk, user and model info, the list of models (and `/metrics` unless it is open).
    case read
    /// observe and bulk observations.
    case write
    /// Everything that changes a model: retrain, jobs, rollback, the challenger, promote, the
    /// exploration policy, evaluate-policy.
    case admin

    /// This role's bit in a token's grants.
    var bit: UInt8 {
        switch self {
        case .read: 0b001
        case .write: 0b010
        case .admin: 0b100
        }
    }

    /// The bits of this role and of the roles below it: a token's grants are the union of these.
    var grants: UInt8 {
        switch self {
        case .read: 0b001
        case .write: 0b011
        case .admin: 0b111
        }
    }

    /// `read` < `write` < `admin`: each grants what the ones before it do.
    public static func < (a: Self, b: Self) -> Bool { a.bit < b.bit }
}

/// Why a tokens file or `OSPREY_TOKENS` was refused: it names the entry, never the token.
public struct AccessTokensError: Error, CustomStringConvertible, Sendable {
    /// What is wrong and where (`--tokens-file PATH line 3: ...`).
    public let description: String
}

/// The access tokens a server accepts, each with its roles (docs/operations.md, "Access
/// tokens"). Without any, the server is open. A token is matched in time that depends only on
/// the presented token's length and the number of tokens, never on where a configured token
/// differs from it.
public struct AccessTokens: Sendable {
    struct Entry: Sendable {
        let token: [UInt8]
        let grants: UInt8
    }

    private(set) var entries: [Entry] = []

    /// The shortest token accepted.
    public static let minimumLength = 16

    /// No tokens: an open server.
    public init() {}

    /// Tokens as a tokens file has them: one entry a line, `ROLES TOKEN` (roles separated by
    /// commas), `#` comments and blank lines ignored. `separators` also split entries
    /// (`OSPREY_TOKENS` allows `;`). O(text length).
    /// - Parameter source: how an error names where the entries come from (`--tokens-file PATH`).
    /// - Throws: ``AccessTokensError`` naming the first malformed entry (unknown role, no token,
    ///   a token shorter than ``minimumLength`` or with characters outside RFC 6750's `b64token`).
    public init(parsing text: String, source: String, separators: Set<Character> = []) throws(AccessTokensError) {
        let lines = text.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || separators.contains($0) }
        let unit = separators.isEmpty ? "line" : "entry"
        for (n, raw) in lines.enumerated() {
            let line = raw.drop { $0 == " " || $0 == "\t" || $0 == "\r" }
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split { $0 == " " || $0 == "\t" || $0 == "\r" }
            let place = "\(source) \(unit) \(n + 1)"
            guard fields.count == 2 else {
                throw AccessTokensError(description: "\(place): expected `ROLES TOKEN` (e.g. `read,write TOKEN`), got \(fields.count) field(s)")
            }
            var grants: UInt8 = 0
            for name in fields[0].split(separator: ",", omittingEmptySubsequences: false) {
                guard let role = AccessRole(rawValue: String(name)) else {
                    // Named only when it cannot be a token (entries written `TOKEN ROLES` by mistake).
                    let shown = name.count < Self.minimumLength ? " `\(name)`" : ""
                    throw AccessTokensError(description: "\(place): unknown role\(shown); roles are read, write, admin, separated by commas, before the token")
                }
                grants |= role.grants
            }
            let token = Array(fields[1].utf8)
            guard token.count >= Self.minimumLength else {
                throw AccessTokensError(description: "\(place): the token is shorter than \(Self.minimumLength) characters")
            }
            guard token.allSatisfy(Self.isTokenCharacter) else {
                throw AccessTokensError(description: "\(place): a token may hold only letters, digits and - . _ ~ + / =")
            }
            entries.append(Entry(token: token, grants: grants))
        }
    }

    /// These tokens and `other`'s (a token in both grants the roles of both).
    public func merging(_ other: AccessTokens) -> AccessTokens {
        var merged = self
        merged.entries += other.entries
        return merged
    }

    /// No tokens configured: the server is open.
    public var isEmpty: Bool { entries.isEmpty }

    /// The number of tokens.
    public var count: Int { entries.count }

    /// The grants of `presented` (0: it matches no token). Compares it with every token, without
    /// an early exit, each in time that depends only on `presented`'s length.
    /// O(tokens · presented length).
    func grants(of presented: some Collection<UInt8>) -> UInt8 {
        var grants: UInt8 = 0
        for entry in entries {
            // All ones when equal, zero otherwise, without a branch on the secret.
            let mask = UInt8(truncatingIfNeeded: 0 &- Int(Self.constantTimeEqual(presented, entry.token)))
            grants |= entry.grants & mask
        }
        return grants
    }

    /// 1 when `presented` equals `secret`, else 0: the loop runs over `presented` whatever
    /// `secret` is (the secret is read at `index % secret.count`, so its length only shows in the
    /// result), and never exits early. O(presented length).
    static func constantTimeEqual(_ presented: some Collection<UInt8>, _ secret: [UInt8]) -> UInt8 {
        guard !secret.isEmpty else { return presented.isEmpty ? 1 : 0 }
        var difference = UInt(bitPattern: presented.count ^ secret.count)
        var i = 0
        for byte in presented {
            difference |= UInt(byte ^ secret[i % secret.count])
            i += 1
        }
        // 1 when difference is 0: (difference | -difference) has its top bit set for any other value.
        return UInt8(truncatingIfNeeded: 1 ^ ((difference | (0 &- difference)) >> (UInt.bitWidth - 1)))
    }

    /// RFC 6750's `b64token` characters: letters, digits and `-._~+/=`.
    static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): true
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"), UInt8(ascii: "/"), UInt8(ascii: "="): true
        default: false
        }
    }
}
