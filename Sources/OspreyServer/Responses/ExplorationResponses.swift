import Foundation
import OspreyEngine
import OspreyModel

/// `PUT /v1/models/{model}/exploration`.
struct ExplorationResponse: APIResponse {
    let name: String
    let policy: ExplorationPolicy

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("name", name)
            w.field("exploration", policy.description)
        }
    }
}

/// `POST /v1/models/{model}/evaluate-policy`.
struct EvaluationResponse: APIResponse {
    let model: String
    let evaluation: PolicyEvaluation

    func write(to w: inout JSONWriter) {
        let e = evaluation
        w.object { w in
            w.field("model", model)
            w.field("policy", e.policy.description)
            w.field("version", e.version)
            w.field("decisions", e.decisions)
            w.field("used", e.used)
            w.field("samples", e.samples)
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

/// `POST` and `DELETE /v1/models/{model}/challenger`: the model's name, serving version and
/// competition (null when none).
struct CompetitionResponse: APIResponse {
    let info: ModelInfo

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("name", info.name)
            w.field("version", info.version)
            w.key("competition")
            Self.write(info.competition, to: &w)
        }
    }

    /// A competition as both this answer and the model's info show it (null when none).
    static func write(_ competition: CompetitionInfo?, to w: inout JSONWriter) {
        guard let c = competition else { return w.null() }
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
}
