import Dispatch
import Logging
import OspreyMath
import OspreyModel
import OspreyStorage
import Synchronization

/// Each model's exploration policy, set durably, and off-policy evaluation of another policy on
/// the model's own decision log (docs/architecture.md, "Exploration and the decision log").
public final class ExplorationControl: Sendable {
    private let stores: Stores
    private let registry: ModelRegistry
    private let decisions: DecisionLog
    private let logger: Logger

    init(stores: Stores, registry: ModelRegistry, decisions: DecisionLog, logger: Logger) {
        self.stores = stores
        self.registry = registry
        self.decisions = decisions
        self.logger = logger
    }

    /// Sets the model's exploration policy, durably; top-k answers use it from now on. On a
    /// cluster node, every node follows (the change is announced, and compared at each
    /// heartbeat: ``follow(_:stored:)``).
    /// - Throws: ``OspreyError`` `unknownModel`.
    public func setPolicy(model name: String, _ policy: ExplorationPolicy) throws {
        let model = try registry.model(name)
        try stores.versions.setExplorationPolicy(model: name, policy: policy.description)
        model.exploration = policy
        logger.info("exploration policy set", metadata: ["model.name": "\(name)", "policy": "\(policy)"])
        registry.announce("the exploration policy", of: name, logger: logger)
    }

    /// On a cluster node, takes the exploration policy another node stored for `model` (its
    /// text as the version store holds it; nil or unreadable: left as it is). Returns whether
    /// it changed.
    @discardableResult
    func follow(_ model: ServedModel, stored text: String?) -> Bool {
        guard let text, let policy = try? ExplorationPolicy.parse(text), policy != model.exploration else { return false }
        model.exploration = policy
        logger.info("exploration policy followed", metadata: ["model.name": "\(model.name)", "policy": "\(policy)"])
        return true
    }

    /// The most decisions one evaluation reads.
    public static let maxEvaluatedDecisions = 1_000_000
    /// The most propensity draws one evaluation makes (decisions × samples): about a minute of a
    /// core at worst.
    public static let maxEvaluationDraws = 20_000_000

    /// The models with an evaluation running (one at a time per model).
    private let evaluating = Mutex<Set<String>>([])

    /// Estimates from the model's latest `limit` logged decisions the reward `policy` would have
    /// earned run on `version` (default: the serving one, with users' live weights; another
    /// version with its stored weights). Buffered decisions are written first. Runs on a
    /// dispatch queue, off the pool serving requests, one at a time per model, within
    /// ``maxEvaluatedDecisions``; `propensitySamples` is lowered so that decisions × samples stays
    /// within ``maxEvaluationDraws`` (``PolicyEvaluation/samples`` says what was used).
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownVersion`, `invalidArgument` (sizes), or
    ///   `conflict` while another evaluation of the model runs.
    public func evaluate(model name: String, policy: ExplorationPolicy, version number: Int? = nil,
                               limit: Int = 10_000, propensitySamples: Int = 64, seed: UInt64 = 1) async throws -> PolicyEvaluation {
        let model = try registry.model(name)
        guard limit >= 1, limit <= Self.maxEvaluatedDecisions else {
            throw OspreyError(.invalidArgument, "limit must be between 1 and \(Self.maxEvaluatedDecisions)")
        }
        guard propensitySamples >= 1, propensitySamples <= 10_000 else {
            throw OspreyError(.invalidArgument, "samples must be between 1 and 10000")
        }
        // At most maxEvaluationDraws in all: more decisions, fewer draws each (the answer says how many).
        let propensitySamples = min(propensitySamples, max(1, Self.maxEvaluationDraws / limit))
        guard evaluating.withLock({ $0.insert(name).inserted }) else {
            throw OspreyError(.conflict, "an evaluation of model `\(name)` is running; wait for its answer before asking for another")
        }
        defer { _ = evaluating.withLock { $0.remove(name) } }
        await decisions.flushed()
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .utility).async {
                continuation.resume(with: Result {
                    let records = try self.stores.decisions.decisions(model: name, limit: limit)
                    let feedback = try self.stores.log.feedback(model: name)
                    let state = model.current
                    if number == nil || number == state.version.number {
                        return PolicyEvaluation.evaluate(
                            records, feedback: feedback, policy: policy, version: state.version,
                            states: { uid in (try? state.users.fullState(uid))??.ridge }, propensitySamples: propensitySamples, seed: seed)
                    }
                    let version: ModelVersion
                    do {
                        version = try self.stores.versions.loadVersion(model: name, number: number!)
                    } catch let e as StorageError where e.code == .notFound {
                        throw OspreyError(.unknownVersion, "model `\(name)` has no version \(number!)")
                    }
                    // The decisions' users' stored states only (a point read each), not every user's.
                    return PolicyEvaluation.evaluate(
                        records, feedback: feedback, policy: policy, version: version,
                        states: { uid in (try? self.stores.snapshots.loadUserState(model: name, version: version.number, uid: uid, dimension: version.dimension))??.weights.ridge },
                        propensitySamples: propensitySamples, seed: seed)
                })
            }
        }
    }
}
