import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOPosix
import OspreyEngine

/// Builds the HTTP application over a manager; the `osprey serve` command and the tests build
/// the very same one. With `fastPath` (the default), `predict`, in-memory `topk` and plain
/// `observe` requests are answered on the event loops (``FastPathHandler``), whole-catalogue top-k
/// scans run on a pool of ``ServerConfiguration/scanThreads`` threads, and the rest is answered
/// by the router. The application's services own the event-loop group and the scan pool, and
/// stop them after the server has stopped.
///
/// With ``ServerConfiguration/tls``, every connection begins with a TLS handshake (HummingbirdTLS's
/// `TLSChannel` in front of either child channel), so both the fast path and the router answer
/// over HTTPS.
///
/// `onListening` is called with the port once the server listens (the one chosen when
/// ``ServerConfiguration/port`` is 0).
public func buildApplication(
    manager: Manager, configuration: ServerConfiguration = .init(), logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let api = API(manager: manager, configuration: configuration)
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    let routes = api.register(on: router)
    // After the routes: it wraps only the not-found responder (see MethodNotAllowedMiddleware).
    router.middlewares.add(MethodNotAllowedMiddleware(routes: routes))
    let fastPathMetrics = FastPathHandler.patterns.map { api.metrics.route($0.endpoint.metricName!) }
    let fastPath = configuration.fastPath
    let scanThreads = configuration.scanThreadCount
    let scans = scanThreads > 0 ? WorkerPool(name: "osprey-scan", threads: scanThreads) : nil
    let loops = EventLoopGroupService(threads: configuration.eventLoopCount)
    let tls = configuration.tls
    return Application(
        router: router,
        server: HTTPServerBuilder { responder in
            let http: any ServerChildChannel = fastPath
                ? FastPathChannel(responder: responder) {
                    FastPathHandler(api: api, scans: scans, routeMetrics: fastPathMetrics)
                }
                : HTTP1Channel(responder: responder, configuration: .init())
            return try tls.map { try withTLS(http, $0) } ?? http
        },
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: API.serverName),
        // Stopped in reverse order after the server: the scans it waits for, then the loops.
        services: [loops] + (scans.map { [$0] } ?? []),
        onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
        eventLoopGroupProvider: .shared(loops.group),
        logger: logger)
}

/// `channel` behind a TLS handshake with `tls`'s certificate and key.
private func withTLS(_ channel: some ServerChildChannel, _ tls: ServerTLS) throws -> any ServerChildChannel {
    try TLSChannel(channel, tlsConfiguration: tls.configuration)
}
