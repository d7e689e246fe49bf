import Foundation
import OspreyEngine
import OspreyStorage

/// `GET /v1/models`.
struct ModelListResponse: APIResponse {
    let models: [ModelInfo]

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.key("models")
            w.array { w in
                for m in models {
                    w.object { w in
                        w.field("name", m.name)
                        w.field("version", m.version)
                        w.field("dimension", m.dimension)
                        w.field("users", m.users)
                        w.field("items", m.items)
                    }
                }
            }
        }
    }
}

/// `GET /v1/models/{model}`: the serving version, sizes, quality, competition and every version.
struct ModelResponse: APIResponse {
    let info: ModelInfo

    func write(to w: inout JSONWriter) {
        let iso = ISO8601DateFormatter()
        w.object { w in
            w.field("name", info.name)
            w.field("version", info.version)
            w.field("dimension", info.dimension)
            w.field("users", info.users)
            w.field("items", info.items)
            w.field("observations", info.observations)
            w.field("exploration", info.exploration.description)
            w.field("decisions", info.decisions)
            w.key("competition")
            CompetitionResponse.write(info.competition, to: &w)
            w.key("quality")
            w.object { w in
                w.field("stale", info.quality.stale)
                w.field("windowed_loss", info.quality.windowedLoss)
                w.field("baseline_loss", info.quality.baseline)
                w.field("window", info.quality.configuration.window)
                w.field("threshold", info.quality.configuration.threshold)
                w.field("scored", info.quality.scored)
                w.field("validation_loss", info.quality.validationLoss)
                w.field("validation_scored", info.quality.validationScored)
                w.field("validation_fraction", info.quality.configuration.validationFraction)
                w.field("exploration_loss", info.quality.explorationLoss)
                w.field("exploration_baseline_loss", info.quality.explorationBaseline)
                w.field("exploration_scored", info.quality.explorationScored)
            }
            w.key("versions")
            w.array { w in
                for v in info.versions { Self.write(v, iso: iso, to: &w) }
            }
        }
    }

    private static func write(_ v: VersionRecord, iso: ISO8601DateFormatter, to w: inout JSONWriter) {
        w.object { w in
            w.field("version", v.number)
            w.field("created_at", iso.string(from: v.createdAt))
            w.field("status", v.status.rawValue)
            w.field("parent", v.parent)
            w.field("dimension", v.metadata.factors)
            w.field("items", v.items)
            w.field("lambda", v.metadata.lambda)
            w.field("scaled_lambda", v.metadata.scaledLambda)
            w.field("lambda_selection", v.metadata.lambdaSelection)
            w.field("iterations", v.metadata.iterations)
            w.field("training_rmse", v.metadata.trainingRMSE)
            w.field("validation_rmse", v.metadata.validationRMSE)
            w.field("ratings", v.metadata.ratings)
            w.field("training_seconds", v.metadata.durationSeconds)
            w.field("trained_through_seq", v.metadata.trainedThroughSeq.map(Int.init))
            w.key("trigger")
            if let t = v.metadata.trigger { w.value(t) } else { w.null() }
            w.key("source")
            if let s = v.metadata.source { w.value(s) } else { w.null() }
        }
    }
}

/// A retrain job: `POST …/retrain`, `GET …/jobs/{id}`, `POST …/jobs/{id}/cancel`.
struct JobResponse: APIResponse {
    let job: RetrainJob

    func write(to w: inout JSONWriter) {
        let iso = ISO8601DateFormatter()
        w.object { w in
            w.field("id", job.id)
            w.field("model", job.model)
            w.field("trigger", job.trigger.rawValue)
            w.field("phase", job.phase.rawValue)
            w.field("lambda_fits", job.lambdaFits)
            w.field("iteration", job.iteration)
            w.field("iterations", job.iterations)
            w.field("elapsed_seconds", job.elapsed)
            w.field("started_at", iso.string(from: job.startedAt))
            w.key("finished_at")
            if let f = job.finishedAt { w.value(iso.string(from: f)) } else { w.null() }
            w.field("version", job.version)
            w.key("error")
            if let e = job.error { w.value(e) } else { w.null() }
            w.field("cancel_requested", job.cancelRequested)
        }
    }
}

/// The version a model serves after `POST …/rollback` or `POST …/promote`.
struct ServingVersionResponse: APIResponse {
    let name: String
    let version: Int

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("name", name)
            w.field("version", version)
        }
    }
}
