import Logging
import Synchronization

/// The models the engine serves, by name: those loaded at start, and those made since
/// (``Manager/createModel(_:)``). Models are added, never removed.
public final class ModelRegistry: Sendable {
    private let models: Mutex<[String: ServedModel]>
    /// Held while a model is made, so two requests for one name cannot both make it; readers
    /// never wait for it.
    let creation = Mutex<Void>(())

    /// This process as a node of a cluster (nil: a lone process, which serves every user).
    public let cluster: ClusterNode?

    init(models: [ServedModel], cluster: ClusterNode? = nil) {
        self.models = Mutex(Dictionary(uniqueKeysWithValues: models.map { ($0.name, $0) }))
        self.cluster = cluster
    }

    /// The served model named `name`. O(1).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func model(_ name: String) throws -> ServedModel {
        guard let m = models.withLock({ $0[name] }) else { throw OspreyError.unknownModel(name) }
        return m
    }

    /// The state that serves user `uid` of model `name` (``ServedModel/state(for:)``), once the
    /// user is known to be served here: on a cluster node, the user must be this node's
    /// (``ClusterNode/check(_:)``), and is adopted from the stores if the node does not hold it
    /// yet. O(1) when held.
    /// - Throws: ``OspreyError`` `unknownModel`, `misdirected` naming the owner, or `unavailable`.
    public func state(model name: String, uid: String) throws -> ServingState {
        let m = try model(name)
        try claim(uid, of: m)
        return m.state(for: uid)
    }

    /// On a cluster node, checks that `uid` is served here and adopts it in every learning state
    /// of `model` (`learning`: as the prior if the stores have nothing of it, since an
    /// observation of it follows); nothing otherwise.
    /// - Throws: ``OspreyError`` `misdirected` naming the owner, or `unavailable`.
    func claim(_ uid: String, of model: ServedModel, learning: Bool = false) throws {
        guard let cluster else { return }
        try cluster.check(uid)
        for state in model.learningStates { try state.adopt(uid, creating: learning) }
    }

    /// On a cluster node, tells the other nodes that `what` of model `model` changed in the
    /// stores (``ClusterNode/announceChange(model:)``), so they read it at once. Delivery is not
    /// guaranteed: a failure is logged, and the others read the change at their next heartbeat.
    func announce(_ what: String, of model: String, logger: Logger) {
        guard let cluster else { return }
        do {
            try cluster.announceChange(model: model)
        } catch {
            logger.warning("could not announce \(what); the other nodes read it at their next heartbeat", metadata: [
                "model.name": "\(model)", "error": "\(error)",
            ])
        }
    }

    /// Throws on a cluster node: `action` changes what every node serves, which nodes cannot yet
    /// load while they run.
    /// - Throws: ``OspreyError`` `conflict`.
    func requireLoneProcess(_ action: @autoclosure () -> String) throws {
        if let cluster { try cluster.refuse(action()) }
    }

    /// Whether a model named `name` is served. O(1).
    func contains(_ name: String) -> Bool { models.withLock { $0[name] != nil } }

    /// The number of served models. O(1).
    var count: Int { models.withLock { $0.count } }

    /// Serves `model` from now on. O(1) amortized.
    /// - Precondition: no model of its name is served.
    func add(_ model: ServedModel) {
        models.withLock {
            precondition($0[model.name] == nil, "model \(model.name) is served already")
            $0[model.name] = model
        }
    }

    /// All served models, by name.
    public var all: [ServedModel] { models.withLock { Array($0.values) }.sorted { $0.name < $1.name } }
}
