import Foundation
import Hummingbird
import HummingbirdCore
import OspreyEngine
import OspreyModel

/// The v1 endpoints. Each handler validates its input, calls the engine, and writes JSON.
struct API: Sendable {
    let manager: Manager
    let predictor: Predictor
    let configuration: ServerConfiguration
    let metrics: ServerMetrics

    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    /// The `Server` header.
    static let serverName = "osprey"

    init(manager: Manager, configuration: ServerConfiguration) {
        self.manager = manager
        predictor = Predictor(registry: manager.registry)
        self.configuration = configuration
        metrics = ServerMetrics()
    }

    /// Registers every endpoint on `router`; returns the table of their paths and methods (for
    /// ``MethodNotAllowedMiddleware``).
    @discardableResult
    func register(on router: Router<BasicRequestContext>) -> RouteTable {
        var table = RouteTable()
        func on(_ method: HTTPRequest.Method, _ path: String, _ handler: @escaping Handler) {
            router.on(RouterPath(path), method: method, use: handler)
            table.add(method, path)
        }
        on(.get, "/healthz", instrument("healthz") { _, _ in
            JSONWriter.response { $0.object { $0.field("status", "ok") } }
        })
        on(.get, "/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render(manager: manager))))
        }
        let openAPI = Self.openAPIDocument()
        on(.get, "/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPI))
        }
        on(.get, "/v1/models", instrument("models", listModels))
        on(.get, "/v1/models/{model}", instrument("model", modelInfo))
        on(.get, "/v1/models/{model}/users/{uid}", instrument("user", userInfo))
        on(.get, "/v1/models/{model}/users/{uid}/predict", instrument("predict", predict))
        on(.post, "/v1/models/{model}/users/{uid}/topk", instrument("topk", topK))
        on(.post, "/v1/models/{model}/users/{uid}/observe", instrument("observe", observe))
        on(.post, "/v1/models/{model}/observations", instrument("observations", observeBulk))
        on(.post, "/v1/models/{model}/retrain", instrument("retrain", retrain))
        on(.get, "/v1/models/{model}/jobs/{id}", instrument("job", job))
        on(.post, "/v1/models/{model}/jobs/{id}/cancel", instrument("cancel", cancel))
        on(.post, "/v1/models/{model}/rollback", instrument("rollback", rollback))
        on(.put, "/v1/models/{model}/exploration", instrument("exploration", setExploration))
        on(.post, "/v1/models/{model}/challenger", instrument("challenger", startChallenger))
        on(.delete, "/v1/models/{model}/challenger", instrument("challenger", stopChallenger))
        on(.post, "/v1/models/{model}/promote", instrument("promote", promote))
        on(.post, "/v1/models/{model}/evaluate-policy", instrument("evaluate_policy", evaluatePolicy))
        return table
    }

    /// Wraps a handler to count it and time it under `name`.
    func instrument(_ name: String, _ handler: @escaping Handler) -> Handler {
        let route = metrics.route(name)
        let metrics = self.metrics
        return { request, context in
            let start = ContinuousClock.now
            do {
                let response = try await handler(request, context)
                metrics.record(route, status: Int(response.status.code), duration: .now - start)
                return response
            } catch {
                metrics.record(route, status: Int(APIError.from(error).status.code), duration: .now - start)
                throw error
            }
        }
    }

    static func openAPIDocument() -> ByteBuffer {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml"),
              let text = try? String(contentsOf: url, encoding: .utf8)
        else { return ByteBuffer(string: "# openapi.yaml missing from the build\n") }
        return ByteBuffer(string: text)
    }

    // MARK: Handlers

    func listModels(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let infos = try manager.registry.all.map { try manager.info(model: $0.name) }
        return JSONWriter.response { w in
            w.object { w in
                w.key("models")
                w.array { w in
                    for m in infos {
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

    func modelInfo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let info = try manager.info(model: try context.parameter("model"))
        let iso = ISO8601DateFormatter()
        return JSONWriter.response { w in
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
                if let c = info.competition { Self.write(c, to: &w) } else { w.null() }
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
                    for v in info.versions {
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
                        }
                    }
                }
            }
        }
    }

    func userInfo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let info = try manager.info(model: try context.parameter("model"), uid: try context.parameter("uid"))
        return JSONWriter.response { w in
            w.object { w in
                w.field("uid", info.uid)
                w.field("observations", info.observations)
                w.field("running_loss", info.runningLoss)
                w.field("bootstrapped", info.bootstrapped)
            }
        }
    }

    func predict(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let item = request.uri.query.flatMap { Self.queryValue("item", in: $0[...]) }
        return .json(try predictAnswer(model: try context.parameter("model"), uid: try context.parameter("uid"), item: item))
    }

    /// predict's JSON answer, for the router and the event-loop fast path (``FastPathHandler``).
    func predictAnswer(model: String, uid: String, item: String?) throws -> ByteBuffer {
        guard let item, !item.isEmpty else {
            throw APIError.badRequest("predict needs the item as a query parameter: ?item=ITEM")
        }
        let p = try predictor.predict(model: model, uid: uid, item: item)
        return JSONWriter.body { w in
            w.object { w in
                w.field("uid", uid)
                w.field("item", item)
                w.field("score", p.score)
                w.field("version", p.version)
            }
        }
    }

    func topK(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        let body = try TopKBody.decode(from: try await request.body.collect(upTo: configuration.maxBodyBytes))
        return .json(try topKAnswer(model: model, uid: uid, body))
    }

    /// True when a top-k answer to `body` needs no read of the store: no `exclude_observed`, and
    /// a policy that reads only `w_u` (greedy, ε-greedy), so the event-loop fast path may answer it.
    /// - Throws: ``OspreyError`` `unknownModel`.
    func answersFromMemory(model: String, _ body: TopKBody) throws -> Bool {
        guard body.excludeObserved != true else { return false }
        if body.explore == false { return true }
        return !(try manager.registry.model(model).exploration.readsFullState)
    }

    /// topk's JSON answer, for the router and the event-loop fast path (``FastPathHandler``).
    func topKAnswer(model: String, uid: String, _ body: TopKBody) throws -> ByteBuffer {
        let k = body.k ?? 10
        guard k >= 1, k <= configuration.maxK else {
            throw OspreyError(.invalidArgument, "k must be between 1 and \(configuration.maxK), got \(k)")
        }
        let answer = try manager.explorer.topK(
            model: model, uid: uid, k: k, items: body.items?.map(\.value),
            exclude: body.exclude?.map(\.value) ?? [], excludeObserved: body.excludeObserved ?? false, explore: body.explore)
        let exploringKey: String? = switch answer.policy {
        case .linUCB: "ucb"
        case .thompson: "sampled"
        case .greedy, .epsilonGreedy: nil
        }
        return JSONWriter.body { w in
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

    func observe(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        let body = try ObserveBody.decode(from: try await request.body.collect(upTo: configuration.maxBodyBytes))
        let feedback = try body.feedback(uid: uid)
        let version = try await manager.ingestor.observe(model: model, [feedback])
        return .json(Self.observeAnswer(feedback, version: version))
    }

    /// observe's JSON answer, for the router and the event-loop fast path (``FastPathHandler``).
    static func observeAnswer(_ feedback: Feedback, version: Int) -> ByteBuffer {
        JSONWriter.body { w in
            w.object { w in
                w.field("uid", feedback.uid)
                w.field("item", feedback.item)
                w.field("version", version)
                w.field("accepted", true)
            }
        }
    }

    func observeBulk(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(BulkObserveBody.self, limit: configuration.maxBodyBytes)
        guard !body.observations.isEmpty else { throw OspreyError(.invalidArgument, "observations must not be empty") }
        var batch: [Feedback] = []
        batch.reserveCapacity(body.observations.count)
        for (n, o) in body.observations.enumerated() {
            guard let label = o.label.finiteLabel else {
                throw OspreyError(.invalidArgument, "observation \(n): label \(Double.labelRangeText)")
            }
            batch.append(Feedback(uid: o.uid.value, item: o.item.value, label: label, eventId: o.eventId))
        }
        try await manager.ingestor.observe(model: model, batch)
        return JSONWriter.response { $0.object { $0.field("accepted", batch.count) } }
    }
}

extension API {
    func retrain(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(RetrainBody.self, limit: configuration.maxBodyBytes,
                                                emptyAs: RetrainBody(wait: nil, challenger: nil))
        let id = try manager.retrainer.start(model: model, challenger: try body.challenger.map(Self.allocation))
        guard body.wait == true else { return Self.response(try manager.retrainer.job(id, model: model), status: .accepted) }
        return Self.response(try await manager.retrainer.wait(forJob: id, model: model))
    }

    func job(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        return Self.response(try manager.retrainer.job(try Self.jobID(try context.parameter("id")), model: model))
    }

    func cancel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        return Self.response(try manager.retrainer.cancel(job: try Self.jobID(try context.parameter("id")), model: model))
    }

    /// A job id as openapi.yaml has it: an integer (optional minus sign, decimal digits) of 64 bits.
    /// - Throws: 400 for anything else (`Int` alone would also take a leading `+`).
    static func jobID(_ text: String) throws -> Int {
        guard !text.hasPrefix("+"), let id = Int(text) else {
            throw APIError.badRequest("a job id is an integer from \(Int.min) to \(Int.max), got `\(text)`")
        }
        return id
    }

    func rollback(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(RollbackBody.self, limit: configuration.maxBodyBytes)
        try await manager.installer.rollback(model: model, to: body.version)
        return JSONWriter.response { w in
            w.object { w in
                w.field("name", model)
                w.field("version", body.version)
            }
        }
    }

    static func response(_ job: RetrainJob, status: HTTPResponse.Status = .ok) -> Response {
        let iso = ISO8601DateFormatter()
        return JSONWriter.response(status: status) { w in
            w.object { w in
                w.field("id", job.id)
                w.field("model", job.model)
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

    /// The value of query parameter `name` in a query string, percent-decoded, found without
    /// building a dictionary of all parameters (this is on the predict path).
    static func queryValue(_ name: StaticString, in query: Substring) -> String? {
        var query = query
        return query.withUTF8 { queryValue(name, in: $0[...]) }
    }

    /// ``queryValue(_:in:)`` over the query's bytes: O(its length), allocating only the value.
    static func queryValue(_ name: StaticString, in query: Slice<UnsafeBufferPointer<UInt8>>) -> String? {
        name.withUTF8Buffer { name in
            var rest = query[...]
            while !rest.isEmpty {
                let pairEnd = rest.firstIndex(of: UInt8(ascii: "&")) ?? rest.endIndex
                let pair = rest[..<pairEnd]
                rest = pairEnd < rest.endIndex ? rest[(pairEnd + 1)...] : rest[rest.endIndex...]
                guard let equals = pair.firstIndex(of: UInt8(ascii: "=")), pair[..<equals].elementsEqual(name) else { continue }
                let raw = pair[(equals + 1)...]
                let value = String(decoding: UnsafeBufferPointer(rebasing: raw), as: UTF8.self)
                guard raw.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) else { return value }
                return value.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
            }
            return nil
        }
    }
}

extension BasicRequestContext {
    /// A path parameter, percent-decoded.
    func parameter(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }
        return raw.removingPercentEncoding ?? raw
    }
}
