import ServiceLifecycle

/// Publishes the rows items learned online to what answers read, at
/// ``Manager/Configuration/itemPublishInterval`` (docs/architecture.md, "Items learn online"):
/// each serving state's changed rows go into its features at once
/// (``ServingState/publishItems()``), and its cached answers are invalidated. A shorter interval
/// serves fresher item rows; a longer one keeps cached answers longer and rebuilds the scan
/// table less often (docs/operations.md, "Items learn online", measures the trade-off).
///
/// As a `Service` it runs only with item updates on, and publishes once more on graceful
/// shutdown.
public final class ItemPublisher: Service, Sendable {
    private let registry: ModelRegistry
    private let configuration: Manager.Configuration

    init(registry: ModelRegistry, configuration: Manager.Configuration) {
        self.registry = registry
        self.configuration = configuration
    }

    /// Publishes every interval until the graceful shutdown.
    public func run() async throws {
        guard configuration.itemUpdates else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: self.configuration.itemPublishInterval)
                if Task.isCancelled { break }
                _ = try? await BackgroundThread.run(name: "osprey-publish") { self.publish() }
            }
        }
        publish()
    }

    /// Publishes every learning state's changed item rows now. Returns the rows published.
    /// O(items · d) per state whose trained items changed.
    @discardableResult
    public func publish() -> Int {
        var rows = 0
        for model in registry.all {
            for state in model.learningStates { rows += state.publishItems() }
        }
        return rows
    }
}
