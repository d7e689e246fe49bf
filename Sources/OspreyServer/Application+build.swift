import Foundation
import Hummingbird
import Logging
import OspreyEngine

/// Builds the HTTP application over a manager; the `osprey serve` command and the tests build
/// the very same one.
public func buildApplication(
    manager: Manager, configuration: ServerConfiguration = .init(), logger: Logger
) -> some ApplicationProtocol {
    Application(
        router: buildRouter(manager: manager, configuration: configuration),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "osprey"),
        logger: logger)
}

/// The router of the v1 API (DESIGN.md §5).
public func buildRouter(manager: Manager, configuration: ServerConfiguration = .init()) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    router.middlewares.add(ErrorMiddleware())
    let api = API(manager: manager, predictor: Predictor(registry: manager.registry), configuration: configuration, metrics: ServerMetrics())
    api.register(on: router)
    return router
}
