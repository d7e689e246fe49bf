import Foundation
import Hummingbird
import Logging
import NIOPosix
import OspreyEngine

/// Builds the HTTP application over a manager; the `osprey serve` command and the tests build
/// the very same one. With `fastPath` (the default), `predict`, in-memory `topk` and plain
/// `observe` requests are answered on the event loops (``FastPathHandler``) and the rest by the
/// router.
public func buildApplication(
    manager: Manager, configuration: ServerConfiguration = .init(), logger: Logger
) -> some ApplicationProtocol {
    let api = API(manager: manager, configuration: configuration)
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    api.register(on: router)
    let predict = api.metrics.route("predict"), topK = api.metrics.route("topk"), observe = api.metrics.route("observe")
    let fastPath = configuration.fastPath
    return Application(
        router: router,
        server: .http1(configuration: .init(additionalChannelHandlers: fastPath
            ? [FastPathHandler(api: api, predictRoute: predict, topKRoute: topK, observeRoute: observe)] : [])),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: API.serverName),
        // A group of its own lives as long as the process (a server is built once per process).
        eventLoopGroupProvider: configuration.eventLoops.map { .shared(MultiThreadedEventLoopGroup(numberOfThreads: $0)) } ?? .singleton,
        logger: logger)
}
