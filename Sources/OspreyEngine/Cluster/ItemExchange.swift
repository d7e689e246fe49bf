import Logging
import OspreyStorage
import ServiceLifecycle

/// How a cluster node's items learn from every node (docs/architecture.md, "Items on several
/// nodes"): every ``ClusterNode/Configuration/itemExchangeInterval`` it publishes the sums of
/// what it learned of each item since the version started (``ItemLearner/takeUnexchanged()``)
/// to the ``ItemContributionStore`` at its next revision, reads the other nodes' newer
/// publications, and folds them in (``ItemLearner/fold(_:features:own:)``). The new rows reach
/// answers with the ``ItemPublisher``'s next publication.
///
/// No node waits for another: a publication merges whenever it arrives, and nodes that have
/// read the same publications hold the same item states. Between exchanges each node's users
/// learn against item rows that miss the others' latest observations: the merge delay.
///
/// As a `Service` it runs only with item updates on, and publishes once more on graceful
/// shutdown, after the ingestor has learned what it acknowledged (list it before the ingestor).
public final class ItemExchange: Service, Sendable {
    private let node: ClusterNode
    private let store: any ItemContributionStore
    private let registry: ModelRegistry
    private let metrics: ItemExchangeMetrics
    private let logger: Logger

    init(node: ClusterNode, store: any ItemContributionStore, registry: ModelRegistry, metrics: ItemExchangeMetrics, logger: Logger) {
        self.node = node
        self.store = store
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    /// Exchanges every interval until the graceful shutdown, then publishes once more.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await BackgroundThread.every(self.node.configuration.itemExchangeInterval, name: "osprey-exchange") { self.exchangeOnce() }
        }
        exchangeOnce()
    }

    /// What one exchange did, over every model.
    public struct Outcome: Sendable, Equatable {
        /// This node's item sums published.
        public var published = 0
        /// Other nodes' item sums read.
        public var read = 0
        /// Items solved again.
        public var solved = 0
    }

    /// Publishes, reads and folds once for every model's serving state with item updates. A
    /// failure is logged; what could not be published is published at the next exchange.
    @discardableResult
    public func exchangeOnce() -> Outcome {
        let clock = ContinuousClock(), began = clock.now
        var outcome = Outcome(), failed = false
        defer {
            metrics.exchanges.increment()
            if failed { metrics.failures.increment() }
            metrics.published.increment(by: outcome.published)
            metrics.read.increment(by: outcome.read)
            metrics.seconds.increment(by: Double((clock.now - began) / .microseconds(1)) / 1e6)
        }
        for model in registry.all {
            for state in model.learningStates {
                guard let learner = state.itemLearner, learner.isShared else { continue }
                let version = state.version.number
                let (revision, items) = learner.takeUnexchanged()
                do {
                    try store.publish(model: model.name, version: version, node: node.name, revision: revision, items)
                    outcome.published += items.count
                } catch {
                    failed = true
                    learner.markUnexchanged(items.map(\.item))
                    logger.warning("could not publish the items learned here; trying again at the next exchange", metadata: [
                        "node": "\(node.name)", "model.name": "\(model.name)", "model.version": "\(version)", "error": "\(error)",
                    ])
                }
                do {
                    let read = try store.contributions(model: model.name, version: version, dimension: learner.ridge.parameterCount,
                                                       after: learner.mergedRevisions)
                    outcome.read += read.count
                    outcome.solved += learner.fold(read, features: state.features)
                } catch {
                    failed = true
                    logger.warning("could not read the other nodes' items; trying again at the next exchange", metadata: [
                        "node": "\(node.name)", "model.name": "\(model.name)", "model.version": "\(version)", "error": "\(error)",
                    ])
                }
            }
        }
        return outcome
    }
}
