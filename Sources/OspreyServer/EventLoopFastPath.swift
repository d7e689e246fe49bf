import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import OspreyEngine

/// Answers the hot endpoints — `predict`, `topk` when its answer comes from memory, and `observe`
/// — on the NIO event loop that decoded the request, without the hop into Swift concurrency and
/// the router that a route handler costs (Velox §5: the prediction path must be cheap). It sits
/// right after NIO's HTTP/1 decoder (``FastPathChannel``), so the requests it answers also skip
/// the conversion to and from swift-http-types. The answers are the router's own: the same
/// ``API`` functions build them, the same metrics count them. An `observe` is handed to the group
/// commit and answered when its commit completes (``Ingestor/observe(model:_:completion:)``):
/// never before it is durable and learned. A `topk` over the whole catalogue (or a long
/// candidate list) is scored on the scan pool when the server has one
/// (``ServerConfiguration/scanThreads``) and answered on this loop when done, so the loop's other
/// connections do not wait behind the scan.
///
/// Everything else passes through to Hummingbird unchanged, and so does every request that
/// arrives on a connection while an earlier one is still being answered by the router (this
/// handler counts the responses it sees leaving); requests arriving while an `observe` waits for
/// its commit, or a `topk` for its scan, are held and taken up once it is answered. So a
/// pipelining client gets its responses in order. A request that does not keep its connection
/// alive (`Connection: close`, or HTTP/1.0 without keep-alive) passes through too (Hummingbird
/// answers it). A `topk` that would read the store (`exclude_observed`, or a LinUCB or Thompson
/// policy, which may rebuild a cold user's state) and an `observe` naming an `event_id` (its
/// decision is looked up in the log) are passed on once their body is read, so no event loop
/// blocks on disk.
final class FastPathHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// A request this handler answers: one of the ``Endpoint`` table's fast-path entries, with
    /// its path's `model` and `uid` (and predict's `item`).
    struct Route: Equatable {
        let endpoint: Endpoint
        /// Its index in ``patterns`` (and in ``routeMetrics``).
        let pattern: Int
        let model: String, uid: String
        var item: String? = nil
    }

    private enum State {
        case idle
        /// Reading the body of a request this handler answers.
        case reading(HTTPRequestHead, Route, ByteBuffer)
        /// Passing a request's parts on to the router.
        case passing
    }

    private let api: API
    /// Where long top-k scans run; nil: on this loop.
    private let scans: WorkerPool?
    /// The request metrics of each fast-path endpoint, by its index in ``patterns``.
    private let routeMetrics: [ServerMetrics.Route]
    private var state = State.idle
    /// Requests passed to the router whose response has not ended.
    private var routed = 0
    /// An `observe` is waiting for its commit, or a `topk` for its scan; inbound parts wait in
    /// ``held`` meanwhile.
    private var waiting = false
    private var held: [NIOAny] = []
    /// Parts were passed on since the last `channelReadComplete`.
    private var forwarded = false
    /// The body being read is over the limit: it is dropped and the answer is a 413.
    private var tooLarge = false
    private var wroteSinceFlush = false
    /// A graceful shutdown asked this connection to close while this handler was reading a request
    /// or waiting for its answer; passed on once it has answered (see ``userInboundEventTriggered``).
    private var quiesceHeld = false
    private var date = HTTPDate()

    /// - Parameter routeMetrics: each fast-path endpoint's request metrics, in ``patterns``' order.
    init(api: API, scans: WorkerPool?, routeMetrics: [ServerMetrics.Route]) {
        precondition(routeMetrics.count == Self.patterns.count, "one metrics route per fast-path endpoint")
        self.api = api
        self.scans = scans
        self.routeMetrics = routeMetrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if waiting {
            held.append(data)
            return
        }
        switch (state, unwrapInboundIn(data)) {
        case (.idle, .head(let request)):
            if routed == 0, request.isKeepAlive, let route = Self.route(request) {
                tooLarge = false
                state = .reading(request, route, context.channel.allocator.buffer(capacity: 0))
            } else {
                routed += 1
                state = .passing
                forward(data, context: context)
            }
        case (.reading(let request, let route, var body), .body(var chunk)):
            state = .idle  // no second reference to the buffer while appending
            if tooLarge || body.readableBytes + chunk.readableBytes > api.configuration.maxBodyBytes {
                tooLarge = true
                body.clear()
            } else {
                body.writeBuffer(&chunk)
            }
            state = .reading(request, route, body)
        case (.reading(let request, let route, let body), .end):
            state = .idle
            answer(request, route, body: body, context: context)
        case (.passing, .end):
            state = .idle
            forward(data, context: context)
        case (.passing, _):
            forward(data, context: context)
        default:
            // A part out of order: the router's handling reports it.
            routed += 1
            state = .passing
            forward(data, context: context)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        forwarded = false
        if wroteSinceFlush {
            wroteSinceFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
        passQuiesceIfAnswered(context: context)
    }

    /// Holds a graceful shutdown's `ChannelShouldQuiesceEvent` while a request this handler took
    /// is being read or answered elsewhere. Hummingbird's connection handler, further on, closes
    /// an idle connection on this event and waits for the requests it has seen; it never sees this
    /// handler's, so it would close the connection under an `observe` that is committing, whose
    /// answer would be lost (and a client's retry would log the observation twice), or under a
    /// `topk` being scanned.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, busy {
            quiesceHeld = true
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Reading the body of a request this handler answers, or waiting for its answer.
    private var busy: Bool {
        if waiting { return true }
        if case .reading = state { return true }
        return false
    }

    private func passQuiesceIfAnswered(context: ChannelHandlerContext) {
        guard quiesceHeld, !busy else { return }
        quiesceHeld = false
        context.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // Only the router's responses pass here: this handler writes its own from its context,
        // which starts past it.
        if case .end = unwrapOutboundIn(data) { routed -= 1 }
        context.write(data, promise: promise)
    }

    /// Answers a request this handler took, or passes it on (head, body, end) when its answer
    /// would read the store.
    private func answer(_ request: HTTPRequestHead, _ route: Route, body: ByteBuffer, context: ChannelHandlerContext) {
        let start = ContinuousClock.now
        let out: ByteBuffer
        do {
            try api.configuration.access.check(route.endpoint, authorization: request.headers.first(name: "Authorization"))
            switch route.endpoint {
            case .predict:
                out = try api.predictAnswer(model: route.model, uid: route.uid, item: route.item).body
            case .topK:
                if tooLarge { throw APIError.payloadTooLarge }
                let query = try TopKBody.decode(from: body)
                guard try api.answersFromMemory(model: route.model, query) else {
                    pass(request, body: body, context: context)
                    return
                }
                if let scans, query.scansMany {
                    scan(query, route: route, on: scans, start: start, context: context)
                    return
                }
                out = try api.topKAnswer(model: route.model, uid: route.uid, query).body
            case .observe:
                if tooLarge { throw APIError.payloadTooLarge }
                let feedback = try ObserveBody.decode(from: body).feedback(uid: route.uid)
                guard feedback.eventId == nil else {
                    pass(request, body: body, context: context)
                    return
                }
                try commit(feedback, route: route, start: start, context: context)
                return
            default:
                preconditionFailure("\(route.endpoint) is not a fast-path endpoint")
            }
        } catch {
            let e = APIError.from(error)
            respond(route, status: e.status, body: e.body, challenge: e.challenge, start: start, context: context)
            return
        }
        respond(route, status: .ok, body: out, start: start, context: context)
    }

    /// Hands an observation to the group commit and holds this connection's later requests until
    /// the commit completes; then answers (on this event loop) and takes them up.
    /// - Throws: what checking the feedback throws (nothing was logged then).
    private func commit(_ feedback: Feedback, route: Route, start: ContinuousClock.Instant,
                        context: ChannelHandlerContext) throws {
        let loop = context.eventLoop, channel = context.channel
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        try api.manager.ingestor.observe(model: route.model, [feedback]) { result in
            // A client that closed its connection is not answered: its loop may be shut down by
            // then (a graceful stop waits only for open connections), and the observation is
            // durable either way.
            guard channel.isActive else { return }
            loop.execute {
                let (handler, context) = bound.value
                var status = HTTPResponse.Status.ok
                let out: ByteBuffer
                switch result {
                case .success(let acknowledgement):
                    out = ObserveResponse(feedback: feedback, acknowledgement: acknowledgement).body
                case .failure(let error):
                    let e = APIError.from(error)
                    status = e.status
                    out = e.body
                }
                handler.respond(route, status: status, body: out, start: start, context: context)
                handler.answered(context: context)
            }
        }
        // The completion runs on this loop after this call returns, so this is set before it.
        waiting = true
    }

    /// Scores a top-k on the scan pool and holds this connection's later requests until its
    /// answer is written (on this event loop). O(candidates · d) on the pool.
    private func scan(_ query: TopKBody, route: Route, on pool: WorkerPool, start: ContinuousClock.Instant,
                      context: ChannelHandlerContext) {
        let loop = context.eventLoop, channel = context.channel
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        let api = self.api
        waiting = true
        pool.submit {
            guard channel.isActive else { return }
            let status: HTTPResponse.Status, out: ByteBuffer
            do {
                (status, out) = (.ok, try api.topKAnswer(model: route.model, uid: route.uid, query).body)
            } catch {
                let e = APIError.from(error)
                (status, out) = (e.status, e.body)
            }
            api.metrics.scanned.increment()
            loop.execute {
                let (handler, context) = bound.value
                handler.respond(route, status: status, body: out, start: start, context: context)
                handler.answered(context: context)
            }
        }
    }

    /// The held requests, taken up once the answer to an `observe` or a scanned `topk` is written.
    private func answered(context: ChannelHandlerContext) {
        waiting = false
        var parts = held[...]
        held = []
        while let part = parts.popFirst() {
            if waiting {
                held.append(part)
            } else {
                channelRead(context: context, data: part)
            }
        }
        // What a read would end with: the router takes up what was passed on, answers go out.
        if forwarded {
            forwarded = false
            context.fireChannelReadComplete()
        }
        wroteSinceFlush = false
        context.flush()
        passQuiesceIfAnswered(context: context)
    }

    /// Writes an answer and records it in the route's metrics.
    /// - Parameter challenge: the `WWW-Authenticate` header of a 401.
    private func respond(_ route: Route, status: HTTPResponse.Status, body: ByteBuffer, challenge: String? = nil,
                         start: ContinuousClock.Instant, context: ChannelHandlerContext) {
        api.metrics.record(routeMetrics[route.pattern], status: Int(status.code), duration: .now - start)
        api.metrics.fastPath.increment()
        // The router's headers, as swift-http-types spells them on the wire.
        var headers = HTTPHeaders([
            ("Content-Type", "application/json"), ("Content-Length", String(body.readableBytes)),
            ("Date", date.now), ("Server", API.serverName),
        ])
        if let challenge { headers.add(name: "WWW-Authenticate", value: challenge) }
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: Int(status.code)), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        wroteSinceFlush = true
    }

    private func pass(_ request: HTTPRequestHead, body: ByteBuffer, context: ChannelHandlerContext) {
        routed += 1
        forward(wrapInboundOut(.head(request)), context: context)
        if body.readableBytes > 0 { forward(wrapInboundOut(.body(body)), context: context) }
        forward(wrapInboundOut(.end(nil)), context: context)
    }

    private func forward(_ part: NIOAny, context: ChannelHandlerContext) {
        forwarded = true
        context.fireChannelRead(part)
    }
}
