/// How a model trades showing what it believes is best against learning about what it is unsure
/// of (docs/architecture.md, "Exploration and the decision log"). The API spells a policy `greedy`, `epsilon_greedy(0.1)`, `linucb(1.0)` or
/// `thompson(1.0)`; ``description`` prints that form and ``init(_:)`` parses it.
///
/// - `greedy`: rank by the score `offset + w_u · f(x)`; never explores.
/// - `epsilonGreedy(ε)`: the greedy ranking, with each shown slot replaced by a uniformly drawn
///   candidate from outside the greedy top-k with probability ε (see ``ExplorationSelector``).
/// - `linUCB(α)`: rank by the upper confidence bound `score + α·sqrt(f(x)ᵀ A_u⁻¹ f(x))`, using the
///   ridge inverse online learning keeps (Li et al., WWW 2010).
/// - `thompson(σ)`: rank by the score under one sample `w̃ ~ N(w_u, σ² A_u⁻¹)` from the ridge
///   posterior; σ is the assumed label noise (σ = the noise's standard deviation is the Bayesian
///   choice).
public enum ExplorationPolicy: Sendable, Hashable, LosslessStringConvertible, Codable {
    case greedy
    case epsilonGreedy(Double)
    case linUCB(Double)
    case thompson(Double)

    /// An error raised for a policy string that is not one of the four forms.
    public struct ParseError: Error, CustomStringConvertible {
        public let text: String
        public var description: String {
            "unknown exploration policy '\(text)': use greedy, epsilon_greedy(ε) with 0 ≤ ε ≤ 1, linucb(α) with α ≥ 0, or thompson(σ) with σ ≥ 0"
        }
    }

    /// The API form, e.g. `epsilon_greedy(0.1)`.
    public var description: String {
        switch self {
        case .greedy: "greedy"
        case .epsilonGreedy(let e): "epsilon_greedy(\(e))"
        case .linUCB(let a): "linucb(\(a))"
        case .thompson(let s): "thompson(\(s))"
        }
    }

    /// Parses the API form (case-insensitive, spaces ignored); nil when it is not one.
    public init?(_ text: String) {
        guard let p = try? Self.parse(text) else { return nil }
        self = p
    }

    /// Parses the API form (case-insensitive, spaces ignored).
    /// - Throws: ``ParseError`` for anything else, or a parameter out of range (ε outside [0, 1],
    ///   negative α or σ, not finite).
    public static func parse(_ text: String) throws -> ExplorationPolicy {
        let t = text.lowercased().filter { !$0.isWhitespace }
        if t == "greedy" { return .greedy }
        guard t.hasSuffix(")"), let open = t.firstIndex(of: "(") else { throw ParseError(text: text) }
        let name = t[..<open]
        guard let value = Double(t[t.index(after: open)..<t.index(before: t.endIndex)]), value.isFinite, value >= 0 else {
            throw ParseError(text: text)
        }
        switch name {
        case "epsilon_greedy" where value <= 1: return .epsilonGreedy(value)
        case "linucb": return .linUCB(value)
        case "thompson": return .thompson(value)
        default: throw ParseError(text: text)
        }
    }

    /// True when choosing under the policy needs a user's full ridge state (A⁻¹), not only `w_u`:
    /// LinUCB's confidence bound and Thompson sampling's posterior draws.
    public var readsFullState: Bool {
        switch self {
        case .greedy, .epsilonGreedy: false
        case .linUCB(let a): a > 0
        case .thompson(let s): s > 0
        }
    }

    /// True when the policy can show something other than the greedy ranking.
    public var explores: Bool {
        switch self {
        case .greedy: false
        case .epsilonGreedy(let e): e > 0
        case .linUCB(let a): a > 0
        case .thompson(let s): s > 0
        }
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try Self.parse(text)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
