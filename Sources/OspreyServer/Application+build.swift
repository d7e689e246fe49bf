import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import OspreyEngine

/// Builds the HTTP application over a manager; the `osprey serve` command and the tests build
/// the very same one. With `fastPath` (the default), `predict`, in-memory `topk` and plain
/// `observe` requests are answered on the event loops (``FastPathHandler``), whole-catalogue top-k
/// scans run on a pool of ``ServerConfiguration/scanThreads`` threads, and the rest is answered
/// by the router.
public func buildApplication(
    manager: Manager, configuration: ServerConfiguration = .init(), logger: Logger
) -> some ApplicationProtocol {
    let api = API(manager: manager, configuration: configuration)
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    let routes = api.register(on: router)
    // After the routes: it wraps only the not-found responder (see MethodNotAllowedMiddleware).
    router.middlewares.add(MethodNotAllowedMiddleware(routes: routes))
    let predict = api.metrics.route("predict"), topK = api.metrics.route("topk"), observe = api.metrics.route("observe")
    let fastPath = configuration.fastPath
    let scanThreads = configuration.scanThreadCount
    let scans = scanThreads > 0 ? WorkerPool(name: "osprey-scan", threads: scanThreads) : nil
    return Application(
        router: router,
        server: fastPath
            ? HTTPServerBuilder { responder in
                FastPathChannel(responder: responder) {
                    FastPathHandler(api: api, scans: scans, predictRoute: predict, topKRoute: topK, observeRoute: observe)
                }
            }
            : .http1(),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: API.serverName),
        // A group of its own lives as long as the process (a server is built once per process).
        eventLoopGroupProvider: .shared(configuration.eventLoops.map { MultiThreadedEventLoopGroup(numberOfThreads: $0) }
            ?? defaultEventLoopGroup),
        logger: logger)
}

/// The event loops of a server built without a count: half the cores, at least one. The loops only
/// read requests and write answers (and answer `predict` and short top-k lists); whole-catalogue
/// scans, the group commit and snapshots run on threads of their own, which the other cores are
/// left for. On two cores one loop with the scan pool served predict with a lower p99 than two
/// loops, and as many top-k calls a second (BENCHMARKS.md). Shared by every server of the
/// process, as NIO's singleton is.
let defaultEventLoopGroup = MultiThreadedEventLoopGroup(numberOfThreads: ServerConfiguration.defaultEventLoops)
