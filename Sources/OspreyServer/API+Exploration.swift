import Foundation
import Hummingbird
import OspreyEngine
import OspreyModel

/// The exploration endpoints (issue 5): a model's policy, off-policy evaluation over its
/// decision log, and competing versions.
extension API {
    func setExploration(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(ExplorationBody.self, limit: configuration.maxBodyBytes)
        let policy = try Self.policy(body.policy)
        try manager.exploration.setPolicy(model: model, policy)
        return JSONWriter.response { w in
            w.object { w in
                w.field("name", model)
                w.field("exploration", policy.description)
            }
        }
    }

    func evaluatePolicy(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(EvaluatePolicyBody.self, limit: configuration.maxBodyBytes)
        let policy = try Self.policy(body.policy)
        let e = try await manager.exploration.evaluate(
            model: model, policy: policy, version: body.version, limit: body.limit ?? 10_000,
            propensitySamples: body.samples ?? 64, seed: body.seed ?? 1)
        return JSONWriter.response { w in
            w.object { w in
                w.field("model", model)
                w.field("policy", e.policy.description)
                w.field("version", e.version)
                w.field("decisions", e.decisions)
                w.field("used", e.used)
                w.key("skipped")
                w.object { w in
                    w.field("no_feedback", e.skipped.noFeedback)
                    w.field("no_propensity", e.skipped.noPropensity)
                    w.field("unknown_item", e.skipped.unknownItem)
                    w.field("no_candidates", e.skipped.noCandidates)
                }
                w.field("logged_reward", e.loggedReward)
                w.field("effective_sample_size", e.effectiveSampleSize)
                w.key("estimates")
                w.array { w in
                    for x in e.estimates {
                        w.object { w in
                            w.field("estimator", x.estimator)
                            w.field("value", x.value)
                            w.field("standard_error", x.standardError)
                            w.field("lower", x.lower)
                            w.field("upper", x.upper)
                        }
                    }
                }
            }
        }
    }

    func startChallenger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(ChallengerBody.self, limit: configuration.maxBodyBytes)
        let allocation = try TrafficAllocation.parse(body.allocation ?? "thompson")
        try await manager.installer.startCompetition(model: model, challenger: body.version, allocation: allocation)
        return try competitionResponse(model)
    }

    func stopChallenger(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        try manager.installer.stopCompetition(model: model)
        return try competitionResponse(model)
    }

    func promote(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let version = try manager.installer.promote(model: model)
        return JSONWriter.response { w in
            w.object { w in
                w.field("name", model)
                w.field("version", version)
            }
        }
    }

    /// The model's name, serving version and competition (null when none).
    func competitionResponse(_ model: String) throws -> Response {
        let info = try manager.info(model: model)
        return JSONWriter.response { w in
            w.object { w in
                w.field("name", model)
                w.field("version", info.version)
                w.key("competition")
                if let c = info.competition { Self.write(c, to: &w) } else { w.null() }
            }
        }
    }

    static func write(_ c: CompetitionInfo, to w: inout JSONWriter) {
        w.object { w in
            w.field("champion", c.champion)
            w.field("challenger", c.challenger)
            w.field("allocation", c.allocation.description)
            w.field("since", ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: c.since)))
            w.field("challenger_share", c.challengerShare)
            w.key("versions")
            w.array { w in
                for arm in c.arms {
                    w.object { w in
                        w.field("version", arm.version)
                        w.field("users", arm.users)
                        w.field("decisions", arm.decisions)
                        w.field("feedback", arm.feedback)
                        w.field("mean_reward", arm.meanReward)
                    }
                }
            }
        }
    }

    /// A policy in its API form.
    /// - Throws: ``OspreyError`` `invalidArgument` naming the four forms.
    static func policy(_ text: String) throws -> ExplorationPolicy {
        do { return try ExplorationPolicy.parse(text) } catch { throw OspreyError(.invalidArgument, "\(error)") }
    }
}
