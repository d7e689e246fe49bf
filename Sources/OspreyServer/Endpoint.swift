import HTTPTypes

/// Every endpoint of the HTTP API, once (openapi.yaml documents the same list): its method and
/// path, the `route` label of its request metrics, the role a token needs to call it, and whether
/// the event-loop fast path may answer it. The router registers each from here (``API/register(on:)``), the 405 check learns
/// each path's methods from here (``RouteTable``), and the fast path matches requests against
/// the entries marked for it (``FastPathHandler/route(_:)``), so the three cannot disagree.
enum Endpoint: CaseIterable, Sendable {
    case health, metrics, openAPI
    case models, createModel, model, user, eraseUser
    case predict, predictInline, topK, observe, observations
    case item, putItem, putItems, hideItem, showItem
    case retrain, job, cancelJob, rollback
    case exploration, startChallenger, stopChallenger, promote, evaluatePolicy

    var method: HTTPRequest.Method {
        switch self {
        case .health, .metrics, .openAPI, .models, .model, .user, .predict, .job, .item: .get
        case .topK, .observe, .observations, .retrain, .cancelJob, .rollback, .startChallenger, .promote, .evaluatePolicy: .post
        case .putItems, .hideItem, .showItem, .predictInline, .createModel: .post
        case .exploration, .putItem: .put
        case .stopChallenger, .eraseUser: .delete
        }
    }

    /// The path, with `{parameter}` segments.
    var path: String {
        switch self {
        case .health: "/healthz"
        case .metrics: "/metrics"
        case .openAPI: "/openapi.yaml"
        case .models, .createModel: "/v1/models"
        case .model: "/v1/models/{model}"
        case .user, .eraseUser: "/v1/models/{model}/users/{uid}"
        case .predict, .predictInline: "/v1/models/{model}/users/{uid}/predict"
        case .topK: "/v1/models/{model}/users/{uid}/topk"
        case .observe: "/v1/models/{model}/users/{uid}/observe"
        case .observations: "/v1/models/{model}/observations"
        case .item, .putItem: "/v1/models/{model}/items/{item}"
        case .putItems: "/v1/models/{model}/items"
        case .hideItem: "/v1/models/{model}/items/{item}/hide"
        case .showItem: "/v1/models/{model}/items/{item}/show"
        case .retrain: "/v1/models/{model}/retrain"
        case .job: "/v1/models/{model}/jobs/{id}"
        case .cancelJob: "/v1/models/{model}/jobs/{id}/cancel"
        case .rollback: "/v1/models/{model}/rollback"
        case .exploration: "/v1/models/{model}/exploration"
        case .startChallenger, .stopChallenger: "/v1/models/{model}/challenger"
        case .promote: "/v1/models/{model}/promote"
        case .evaluatePolicy: "/v1/models/{model}/evaluate-policy"
        }
    }

    /// The `route` label of `osprey_http_requests_total` and `osprey_http_request_duration_seconds`
    /// (nil: not counted — a scrape would count itself).
    var metricName: String? {
        switch self {
        case .metrics, .openAPI: nil
        case .health: "healthz"
        case .models: "models"
        case .createModel: "create_model"
        case .model: "model"
        case .user: "user"
        case .eraseUser: "erase_user"
        case .predict, .predictInline: "predict"
        case .topK: "topk"
        case .observe: "observe"
        case .observations: "observations"
        case .item: "item"
        case .putItem, .putItems: "put_items"
        case .hideItem, .showItem: "hide_item"
        case .retrain: "retrain"
        case .job: "job"
        case .cancelJob: "cancel"
        case .rollback: "rollback"
        case .exploration: "exploration"
        case .startChallenger, .stopChallenger: "challenger"
        case .promote: "promote"
        case .evaluatePolicy: "evaluate_policy"
        }
    }

    /// The role an access token needs to call it when the server has tokens (docs/operations.md,
    /// "Access tokens"); nil: none, ever (the API's description is public). ``AccessControl`` may
    /// leave `/healthz` and `/metrics` open too.
    var role: AccessRole? {
        switch self {
        case .openAPI: nil
        case .health, .metrics, .models, .model, .user, .predict, .predictInline, .topK, .item: .read
        case .observe, .observations, .putItem, .putItems, .hideItem, .showItem: .write
        case .createModel, .eraseUser, .retrain, .job, .cancelJob, .rollback, .exploration, .startChallenger, .stopChallenger, .promote, .evaluatePolicy: .admin
        }
    }

    /// Whether ``FastPathHandler`` may answer it on the event loop (it passes on the requests
    /// among these whose answer would read the store).
    var onFastPath: Bool {
        switch self {
        case .predict, .topK, .observe: true
        default: false
        }
    }
}
