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
        metrics = ServerMetrics(engine: manager.metrics)
    }

    /// Registers every endpoint of the table (``Endpoint``) on `router`; returns their paths and
    /// methods (for ``MethodNotAllowedMiddleware``).
    @discardableResult
    func register(on router: Router<BasicRequestContext>) -> RouteTable {
        var table = RouteTable()
        for endpoint in Endpoint.allCases {
            let handler = guarded(endpoint, handler(for: endpoint))
            router.on(RouterPath(endpoint.path), method: endpoint.method,
                      use: endpoint.metricName.map { instrument($0, handler) } ?? handler)
            table.add(endpoint.method, endpoint.path)
        }
        return table
    }

    /// The router's handler of `endpoint`.
    func handler(for endpoint: Endpoint) -> Handler {
        switch endpoint {
        case .health: { _, _ in HealthResponse().response() }
        case .metrics:
            { [metrics] _, _ in
                Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                         body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
            }
        case .openAPI:
            { [openAPI = Self.openAPIDocument()] _, _ in
                Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPI))
            }
        case .models: listModels
        case .createModel: createModel
        case .model: modelInfo
        case .user: userInfo
        case .eraseUser: eraseUser
        case .predict: predict
        case .predictInline: predictInline
        case .topK: topK
        case .observe: observe
        case .observations: observeBulk
        case .item: itemInfo
        case .putItem: putItem
        case .putItems: putItems
        case .hideItem: setHidden(true)
        case .showItem: setHidden(false)
        case .retrain: retrain
        case .job: job
        case .cancelJob: cancel
        case .rollback: rollback
        case .exploration: setExploration
        case .startChallenger: startChallenger
        case .stopChallenger: stopChallenger
        case .promote: promote
        case .evaluatePolicy: evaluatePolicy
        }
    }

    /// Wraps `endpoint`'s handler in the access check that the fast path makes too
    /// (``AccessControl/check(_:authorization:)``); an open server's handlers stay as they are.
    func guarded(_ endpoint: Endpoint, _ handler: @escaping Handler) -> Handler {
        let access = configuration.access
        guard access.role(for: endpoint) != nil else { return handler }
        return { request, context in
            try access.check(endpoint, authorization: request.headers[.authorization])
            return try await handler(request, context)
        }
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
        ModelListResponse(models: try manager.registry.all.map { try manager.info(model: $0.name) }).response()
    }

    func createModel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let body = try await request.decodeJSON(CreateModelBody.self, limit: configuration.maxBodyBytes)
        // A number a Float cannot hold becomes infinite, which the engine refuses by name.
        let spec = EmptyModel(
            name: body.name, factors: body.dimension, lambda: body.lambda.map(Float.init), mean: Float(body.mean ?? 0),
            numeric: (body.numeric ?? [:]).mapValues { .init(mean: $0.mean, deviation: $0.deviation) },
            exploration: try body.exploration.map(Self.policy) ?? .greedy)
        // Storing and loading the model writes to the store: off the event loop.
        let info = try await Task.detached { [manager] in try manager.createModel(spec) }.value
        return ModelResponse(info: info).response(status: .created)
    }

    func modelInfo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        ModelResponse(info: try manager.info(model: try context.parameter("model"))).response()
    }

    func userInfo(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        try check(id: uid, "uid")
        return UserResponse(info: try manager.info(model: model, uid: uid)).response()
    }

    /// Checks an id from a request by the engine's ``InputRules`` (the ingestor checks the ids
    /// it logs by the same rules).
    /// - Throws: ``OspreyError`` `invalidArgument` naming `field`.
    func check(id: String, _ field: @autoclosure () -> String) throws {
        do throws(InputRuleViolation) {
            try manager.inputRules.check(id: id, field: field())
        } catch {
            throw OspreyError(error)
        }
    }

    func predict(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let item = request.uri.query.flatMap { Self.queryValue("item", in: $0[...]) }
        return try predictAnswer(model: try context.parameter("model"), uid: try context.parameter("uid"), item: item).response()
    }

    /// predict's answer, for the router and the event-loop fast path (``FastPathHandler``).
    /// - Throws: 400 without `item`, ``OspreyError`` `invalidArgument` for an id that breaks the
    ///   ``InputRules``, what ``Predictor/predict(model:uid:item:)`` throws.
    func predictAnswer(model: String, uid: String, item: String?) throws -> PredictResponse {
        guard let item else {
            throw APIError.badRequest("predict needs the item as a query parameter: ?item=ITEM")
        }
        try check(id: uid, "uid")
        try check(id: item, "item")
        return PredictResponse(uid: uid, item: item, prediction: try predictor.predict(model: model, uid: uid, item: item))
    }

    func topK(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        let body = try TopKBody.decode(from: try await request.body.collect(upTo: configuration.maxBodyBytes))
        return try topKAnswer(model: model, uid: uid, body).response()
    }

    /// True when a top-k answer to `body` needs no read of the store: no `exclude_observed`, and
    /// a policy that reads only `w_u` (greedy, ε-greedy), so the event-loop fast path may answer it.
    /// - Throws: ``OspreyError`` `unknownModel`.
    func answersFromMemory(model: String, _ body: TopKBody) throws -> Bool {
        guard body.excludeObserved != true, body.inlineItems == nil else { return false }
        if body.explore == false { return true }
        return !(try manager.registry.model(model).exploration.readsFullState)
    }

    /// topk's answer, for the router and the event-loop fast path (``FastPathHandler``).
    /// - Throws: ``OspreyError`` `invalidArgument` for a `k` out of range or a uid or candidate
    ///   that breaks the ``InputRules`` (O(candidates) to check them), what
    ///   ``Explorer/topK(model:uid:k:items:exclude:excludeObserved:explore:)`` throws.
    func topKAnswer(model: String, uid: String, _ body: TopKBody) throws -> TopKResponse {
        try check(id: uid, "uid")
        for (n, item) in (body.items ?? []).enumerated() { try check(id: item.value, "items.\(n)") }
        let inline = try checkInline(body.inlineItems ?? [])
        let k = body.k ?? 10
        guard k >= 1, k <= configuration.maxK else {
            throw OspreyError(.invalidArgument, "k must be between 1 and \(configuration.maxK), got \(k)")
        }
        let answer = try manager.explorer.topK(
            model: model, uid: uid, k: k, items: body.items?.map(\.value),
            exclude: body.exclude?.map(\.value) ?? [], excludeObserved: body.excludeObserved ?? false, explore: body.explore,
            inline: inline)
        return TopKResponse(uid: uid, answer: answer)
    }

    func observe(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        let body = try ObserveBody.decode(from: try await request.body.collect(upTo: configuration.maxBodyBytes))
        let feedback = body.feedback(uid: uid)
        let acknowledgement = try await manager.ingestor.observe(model: model, [feedback])
        return ObserveResponse(feedback: feedback, acknowledgement: acknowledgement).response()
    }

    func observeBulk(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(BulkObserveBody.self, limit: configuration.maxBodyBytes)
        guard !body.observations.isEmpty else { throw OspreyError(.invalidArgument, "observations must not be empty") }
        var batch: [Feedback] = []
        batch.reserveCapacity(body.observations.count)
        for o in body.observations {
            batch.append(Feedback(uid: o.uid.value, item: o.item.value, label: o.label, eventId: o.eventId,
                                  observationId: o.observationId))
        }
        let acknowledgement = try await manager.ingestor.observe(model: model, batch)
        return BulkObserveResponse(accepted: batch.count, duplicates: acknowledgement.duplicates).response()
    }
}

extension API {
    func retrain(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(RetrainBody.self, limit: configuration.maxBodyBytes,
                                                emptyAs: RetrainBody(wait: nil, challenger: nil))
        let id = try manager.retrainer.start(model: model, challenger: try body.challenger.map(Self.allocation))
        guard body.wait == true else { return JobResponse(job: try manager.retrainer.job(id, model: model)).response(status: .accepted) }
        return JobResponse(job: try await manager.retrainer.wait(forJob: id, model: model)).response()
    }

    func job(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        return JobResponse(job: try manager.retrainer.job(try Self.jobID(try context.parameter("id")), model: model)).response()
    }

    func cancel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        return JobResponse(job: try manager.retrainer.cancel(job: try Self.jobID(try context.parameter("id")), model: model)).response()
    }

    /// A job id as openapi.yaml has it: an integer (optional minus sign, decimal digits) of 64 bits.
    /// - Throws: 400 for anything else (`Int` alone would also take a leading `+`).
    static func jobID(_ text: String) throws -> Int {
        guard !text.hasPrefix("+"), let id = Int(text) else {
            throw APIError.badRequest("a job id is an integer from \(Int.min) to \(Int.max), got `\(text)`")
        }
        return id
    }

    /// Erases a user's data (docs/operations.md, "Erasing a user").
    func eraseUser(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model"), uid = try context.parameter("uid")
        try check(id: uid, "uid")
        let erased = try await manager.eraseUserInBackground(model: model, uid: uid)
        return ErasureResponse(model: model, uid: uid, erased: erased).response()
    }

    func rollback(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let model = try context.parameter("model")
        let body = try await request.decodeJSON(RollbackBody.self, limit: configuration.maxBodyBytes)
        try await manager.installer.rollback(model: model, to: body.version)
        return ServingVersionResponse(name: model, version: body.version).response()
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
    /// - Throws: 400 when its percent-encoding is broken or encodes no UTF-8 text (`%FF`, `50%`):
    ///   taking such a segment as it stands would give one id two spellings (`%FF` and `%25FF`).
    func parameter(_ name: String) throws -> String {
        let raw = try parameters.require(name)
        guard raw.utf8.contains(UInt8(ascii: "%")) else { return raw }
        guard let decoded = raw.removingPercentEncoding else {
            throw APIError.badRequest("\(name) `\(raw)` in the path is not percent-encoded UTF-8 text")
        }
        return decoded
    }
}
