/// Who may call what (docs/operations.md, "Access tokens"): the tokens a server accepts and
/// which probes are open. The router and the event-loop fast path both ask ``check(_:authorization:)``.
public struct AccessControl: Sendable {
    /// The accepted tokens; none: every endpoint is open.
    public var tokens: AccessTokens
    /// `/metrics` without a token (otherwise it needs `read`).
    public var openMetrics: Bool
    /// `/healthz` without a token (otherwise it needs `read`).
    public var openHealth: Bool

    /// Settings as `osprey serve` has them by default: no tokens (open), and with tokens
    /// `/healthz` open, `/metrics` for `read`.
    public init(tokens: AccessTokens = .init(), openMetrics: Bool = false, openHealth: Bool = true) {
        self.tokens = tokens
        self.openMetrics = openMetrics
        self.openHealth = openHealth
    }

    /// The role `endpoint` needs from a token under these settings (nil: none, it is open).
    func role(for endpoint: Endpoint) -> AccessRole? {
        guard !tokens.isEmpty else { return nil }
        switch endpoint {
        case .health where openHealth, .metrics where openMetrics: return nil
        default: return endpoint.role
        }
    }

    /// Lets a request for `endpoint` through, or throws why not. O(tokens · token length), the
    /// same whichever token matches (``AccessTokens/grants(of:)``).
    /// - Parameter authorization: the request's `Authorization` header (nil: none), read only
    ///   when the endpoint needs a token.
    /// - Throws: ``APIError/unauthorized`` without a `Bearer` token or with an unknown one,
    ///   ``APIError/forbidden(_:)`` when the token lacks the endpoint's role.
    func check(_ endpoint: Endpoint, authorization: @autoclosure () -> String?) throws(APIError) {
        guard let role = role(for: endpoint) else { return }
        guard let authorization = authorization(), let token = Self.bearerToken(authorization) else { throw .unauthorized }
        let grants = tokens.grants(of: token.utf8)
        guard grants != 0 else { throw .unauthorized }
        guard grants & role.bit != 0 else { throw .forbidden(role) }
    }

    /// The token of an `Authorization: Bearer TOKEN` header (the scheme in any case, RFC 9110
    /// §11.1), or nil for another scheme or none.
    static func bearerToken(_ header: String) -> Substring? {
        let value = header.drop { $0 == " " }
        guard value.count > 7, value.prefix(7).lowercased() == "bearer " else { return nil }
        let token = value.dropFirst(7).drop { $0 == " " }
        let trimmed = token.prefix { $0 != " " }
        return trimmed.isEmpty ? nil : trimmed
    }

    /// Refuses to serve on an address other machines can reach without tokens, unless the
    /// operator said so (docs/operations.md, "Access tokens").
    /// - Throws: ``AccessTokensError`` saying how to proceed.
    public static func checkExposure(host: String, hasTokens: Bool, insecure: Bool) throws(AccessTokensError) {
        guard !hasTokens, !insecure, !isLoopback(host) else { return }
        throw AccessTokensError(description: """
            refusing to serve on \(host) without access tokens: anyone who can reach it could observe, retrain \
            and roll back; give tokens with --tokens-file PATH or OSPREY_TOKENS, listen on 127.0.0.1, or pass \
            --insecure (docs/operations.md, "Access tokens")
            """)
    }

    /// Whether `host` names only this machine: `localhost`, an IPv4 address in 127.0.0.0/8, or `::1`.
    public static func isLoopback(_ host: String) -> Bool {
        let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if host.lowercased() == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && UInt8($0) != nil }) else {
            return false
        }
        return parts[0] == "127"
    }
}
