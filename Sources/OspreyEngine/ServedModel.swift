import OspreyModel
import Synchronization

/// A model as the engine serves it: the serving ``ModelVersion`` (immutable, swapped whole) and
/// the users' weights learned on top of it.
public final class ServedModel: Sendable {
    public let name: String
    private let serving: Mutex<ModelVersion>
    /// Users' weights under the serving version.
    public let users: UserWeightStore
    /// The catalogue rows each user has rated, for top-k's `exclude_observed`.
    public let observed = ObservedItems()
    /// Observations of this model in the log.
    let observationCount: Atomic<Int>

    init(version: ModelVersion, users: UserWeightStore, observations: Int) {
        name = version.model
        serving = Mutex(version)
        self.users = users
        observationCount = Atomic(observations)
    }

    /// The version serving now. Readers keep the value they got even if a swap follows. O(1).
    public var version: ModelVersion { serving.withLock { $0 } }

    /// The number of observations of this model in the log.
    public var observations: Int { observationCount.load(ordering: .relaxed) }

    /// Learns one logged observation (live and on replay alike, in log order): a user never seen
    /// starts from the version's prior (bootstrapping, Velox §5); an item the version does not
    /// know is counted but cannot move the weights. O(d²).
    func learn(_ o: Observation, version v: ModelVersion) {
        let row = v.features.catalog.row(of: o.item)
        users.update(o.uid, create: {
            UserWeights(ridge: .init(prior: v.prior, lambda: v.lambda), bootstrapped: true)
        }) { w in
            if let row {
                observed.insert(uid: o.uid, row: row)
                v.features.withFeatures(item: row) { f, offset in
                    _ = w.learn(features: f, target: o.label - offset)
                }
            } else {
                w.countWithoutLearning()
            }
        }
        observationCount.add(1, ordering: .relaxed)
    }
}
