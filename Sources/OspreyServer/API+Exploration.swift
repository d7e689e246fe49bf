import Foundation
import Hummingbird
import OspreyEngine
import OspreyModel

/// The exploration endpoints (docs/architecture.md, "Exploration and the decision log"): a model's policy, off-policy evaluation over its
/// decision log, and competing versions.
extension API {
    func setExploration(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(ExplorationBody.self, limit: configuration.maxBodyBytes)
        let policy = try Self.policy(body.policy)
        try manager.exploration.setPolicy(model: model, policy)
        return ExplorationResponse(name: model, policy: policy).response()
    }

    func evaluatePolicy(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(EvaluatePolicyBody.self, limit: configuration.maxBodyBytes)
        let policy = try Self.policy(body.policy)
        let e = try await manager.exploration.evaluate(
            model: model, policy: policy, version: body.version, limit: body.limit ?? 10_000,
            propensitySamples: body.samples ?? 64, seed: body.seed ?? 1)
        return EvaluationResponse(model: model, evaluation: e).response()
    }

    func startChallenger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(ChallengerBody.self, limit: configuration.maxBodyBytes)
        let allocation = try Self.allocation(body.allocation ?? "thompson")
        try await manager.installer.startCompetition(model: model, challenger: body.version, allocation: allocation)
        return CompetitionResponse(info: try manager.info(model: model)).response()
    }

    func stopChallenger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        try manager.installer.stopCompetition(model: model)
        return CompetitionResponse(info: try manager.info(model: model)).response()
    }

    func promote(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        return ServingVersionResponse(name: model, version: try manager.installer.promote(model: model)).response()
    }

    /// A policy in its API form: exactly openapi.yaml's `ExplorationRequest.policy` pattern
    /// (``policyForm``), which `ExplorationPolicy.parse` then reads.
    /// - Throws: ``OspreyError`` `invalidArgument` naming the four forms.
    static func policy(_ text: String) throws -> ExplorationPolicy {
        guard text.wholeMatch(of: policyForm) != nil else {
            throw OspreyError(.invalidArgument, "unknown exploration policy '\(text)': use greedy, epsilon_greedy(ε) with 0 ≤ ε ≤ 1, linucb(α) with α ≥ 0, or thompson(σ) with σ ≥ 0 (lowercase, no spaces, e.g. linucb(1.0))")
        }
        do { return try ExplorationPolicy.parse(text) } catch { throw OspreyError(.invalidArgument, "\(error)") }
    }

    /// A traffic allocation in its API form: exactly openapi.yaml's pattern (``allocationForm``).
    /// - Throws: ``OspreyError`` `invalidArgument`.
    static func allocation(_ text: String) throws -> TrafficAllocation {
        guard text.wholeMatch(of: allocationForm) != nil else {
            throw OspreyError(.invalidArgument, "unknown allocation '\(text)': use split(p) with 0 < p < 1 (the challenger's share of users, e.g. split(0.1)) or thompson")
        }
        return try TrafficAllocation.parse(text)
    }

    /// `greedy`, `epsilon_greedy(ε)`, `linucb(α)`, `thompson(σ)`: lowercase, no spaces, and
    /// numbers as `description` prints them, in forms whose value is always in range (0 ≤ ε ≤ 1,
    /// finite α, σ ≥ 0) so that every string the pattern matches is a valid policy and the
    /// schema and the server agree (a pattern cannot bound a number in general: ε is 0.x, 1, 1.0…,
    /// or d.ddde-N; α and σ have at most 16 integer digits and a two-digit exponent).
    /// The same text is openapi.yaml's pattern for `ExplorationRequest.policy` and
    /// `EvaluatePolicyRequest.policy`; APIContractTests checks they are equal.
    static let policyPattern = #"^(greedy|epsilon_greedy\((0(\.[0-9]+)?(e-[0-9]+)?|1(\.0+)?|[1-9](\.[0-9]+)?e-0*[1-9][0-9]*)\)|(linucb|thompson)\((0|[1-9][0-9]{0,15})(\.[0-9]+)?(e[+-]?[0-9]{1,2})?\))$"#

    /// `thompson` or `split(p)` with 0 < p < 1: p is `0.` then at most 15 zeros and at most 16
    /// significant digits, or d.ddde-N with N from 1 to 99, so that it never rounds to 0 or 1.
    /// openapi.yaml's pattern for `ChallengerRequest.allocation` and `RetrainRequest.challenger`.
    static let allocationPattern = #"^(thompson|split\((0\.0{0,15}[1-9][0-9]{0,15}|[1-9](\.[0-9]{1,15})?e-0?[1-9][0-9]?)\))$"#

    // Made for each use: `Regex` is not Sendable, and these endpoints are not hot.
    static var policyForm: Regex<AnyRegexOutput> { try! Regex(policyPattern) }
    static var allocationForm: Regex<AnyRegexOutput> { try! Regex(allocationPattern) }
}
