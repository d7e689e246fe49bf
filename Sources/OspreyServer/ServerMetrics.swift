import CoreMetrics
import OspreyEngine
import Prometheus

/// The metrics `/metrics` exposes, in the Prometheus text format: the requests (counted and timed
/// here, by route) and whatever the engine recorded into the same registry. Every metric is
/// recorded through swift-metrics where its event happens; a scrape only prints the registry
/// (docs/operations.md, "Metrics").
///
/// Each route's counter and timer are made once, so recording a request is a few atomic
/// operations and no lookup; the timer's buckets start at 25 µs because most requests take well
/// under a millisecond.
final class ServerMetrics: Sendable {
    static let buckets: [Duration] = [
        .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(100), .milliseconds(250), .seconds(1),
    ]
    static let requestDuration = "osprey_http_request_duration_seconds"

    /// One route's instruments.
    struct Route: Sendable {
        let name: String
        let ok: CoreMetrics.Counter
        let duration: CoreMetrics.Timer
    }

    let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    /// Requests answered on the event loops by ``FastPathHandler`` (also counted by route).
    let fastPath: CoreMetrics.Counter
    /// Of those, the `topk` calls scored on the scan pool.
    let scanned: CoreMetrics.Counter

    /// The registry of the engine's metrics when the manager records into Prometheus
    /// (``EngineMetrics/prometheus()``), else a registry of its own (the engine's metrics are then
    /// not exposed).
    init(engine: EngineMetrics) {
        registry = (engine.factory as? PrometheusMetricsFactory)?.registry ?? PrometheusCollectorRegistry()
        factory = Self.factory(registry)
        fastPath = CoreMetrics.Counter(label: "osprey_http_fast_path_requests_total", factory: factory)
        scanned = CoreMetrics.Counter(label: "osprey_http_scanned_requests_total", factory: factory)
    }

    /// The factory Osprey records into `registry` with: request and engine timers get ``buckets``.
    static func factory(_ registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        for label in [requestDuration] + EngineMetrics.durationLabels { factory.durationHistogramBuckets[label] = buckets }
        return factory
    }

    func route(_ name: String) -> Route {
        Route(name: name,
              ok: CoreMetrics.Counter(label: "osprey_http_requests_total", dimensions: [("route", name), ("status", "200")], factory: factory),
              duration: CoreMetrics.Timer(label: Self.requestDuration, dimensions: [("route", name)], factory: factory))
    }

    /// Records a finished request.
    func record(_ route: Route, status: Int, duration: Duration) {
        let (seconds, attoseconds) = duration.components
        route.duration.recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        if status == 200 {
            route.ok.increment()
        } else {
            CoreMetrics.Counter(label: "osprey_http_requests_total", dimensions: [("route", route.name), ("status", String(status))],
                    factory: factory).increment()
        }
    }

    /// The exposition text.
    func render() -> String { registry.emitToString() }
}

extension EngineMetrics {
    /// Engine metrics recorded into a Prometheus registry of their own, which the server built
    /// over the manager exposes at `/metrics` along with its request metrics.
    public static func prometheus() -> EngineMetrics {
        EngineMetrics(factory: ServerMetrics.factory(PrometheusCollectorRegistry()))
    }
}
