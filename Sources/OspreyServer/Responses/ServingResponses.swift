import OspreyEngine

/// `GET /v1/models/{model}/users/{uid}/predict`.
struct PredictResponse: APIResponse {
    let uid: String, item: String
    let prediction: Predictor.Prediction

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("uid", uid)
            w.field("item", item)
            w.field("score", prediction.score)
            w.field("version", prediction.version)
        }
    }
}

/// `POST /v1/models/{model}/users/{uid}/topk`.
struct TopKResponse: APIResponse {
    let uid: String
    let answer: Explorer.Answer

    func write(to w: inout JSONWriter) {
        let exploringKey: String? = switch answer.policy {
        case .linUCB: "ucb"
        case .thompson: "sampled"
        case .greedy, .epsilonGreedy: nil
        }
        w.object { w in
            w.field("uid", uid)
            w.field("version", answer.version)
            if let id = answer.eventId { w.field("event_id", id) }
            w.field("policy", answer.policy.description)
            w.key("items")
            w.array { w in
                for shown in answer.items {
                    w.object { w in
                        w.field("item", shown.item)
                        w.field("score", shown.score)
                        if let exploringKey, let value = shown.exploring { w.field(exploringKey, value) }
                        if let p = shown.propensity { w.field("propensity", p) }
                        if shown.explored { w.field("explored", true) }
                    }
                }
            }
        }
    }
}

/// `POST /v1/models/{model}/users/{uid}/observe`: sent once the observation is durable and learned.
/// `duplicate`: its `observation_id` was already logged (a retry): acknowledged, not logged again.
struct ObserveResponse: APIResponse {
    let feedback: Feedback
    let acknowledgement: Acknowledgement

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("uid", feedback.uid)
            w.field("item", feedback.item)
            w.field("version", acknowledgement.version)
            w.field("accepted", true)
            w.field("duplicate", acknowledgement.duplicates > 0)
        }
    }
}

/// `POST /v1/models/{model}/observations`: `duplicates` of the accepted observations were
/// already logged under their `observation_id`.
struct BulkObserveResponse: APIResponse {
    let accepted: Int
    let duplicates: Int

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("accepted", accepted)
            w.field("duplicates", duplicates)
        }
    }
}

/// `GET /v1/models/{model}/users/{uid}`.
struct UserResponse: APIResponse {
    let info: UserInfo

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("uid", info.uid)
            w.field("observations", info.observations)
            w.field("running_loss", info.runningLoss)
            w.field("bootstrapped", info.bootstrapped)
        }
    }
}

/// `DELETE /v1/models/{model}/users/{uid}`: what the erasure deleted, per store.
struct ErasureResponse: APIResponse {
    let model: String
    let uid: String
    let erased: UserErasure

    func write(to w: inout JSONWriter) {
        w.object { w in
            w.field("model", model)
            w.field("uid", uid)
            w.key("deleted")
            w.object { w in
                w.field("observations", erased.observations)
                w.field("snapshot_rows", erased.snapshotRows)
                w.field("decisions", erased.decisions)
                w.field("training_ratings", erased.trainingRatings)
            }
        }
    }
}

/// `GET /healthz`.
struct HealthResponse: APIResponse {
    func write(to w: inout JSONWriter) {
        w.object { $0.field("status", "ok") }
    }
}
