import OspreyModel
import OspreyStorage

/// An error a client can act on. The server maps each code to an HTTP status; the message says
/// what was wrong and how to fix it.
public struct OspreyError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case unknownModel = "unknown_model"
        case unknownItem = "unknown_item"
        case invalidArgument = "invalid_argument"
        case unavailable = "unavailable"
        case unknownVersion = "unknown_version"
        case unknownJob = "unknown_job"
        case conflict = "conflict"
        /// An `event_id` that names no logged top-k answer of the model to the user.
        case unknownEvent = "unknown_event"
        /// A user another node of the cluster serves (``owner`` says which).
        case misdirected = "misdirected"
    }

    public let code: Code
    public let message: String
    /// With `misdirected`: the node that serves the user.
    public let owner: ClusterMember?

    public init(_ code: Code, _ message: String, owner: ClusterMember? = nil) {
        self.code = code
        self.message = message
        self.owner = owner
    }

    public var description: String { message }

    /// An id or label that breaks the ``InputRules``, as `invalidArgument`; `prefix` says which
    /// of several inputs it is (`observation 3: `).
    public init(_ violation: InputRuleViolation, _ prefix: String = "") {
        self.init(.invalidArgument, prefix + violation.description)
    }

    static func unknownModel(_ name: String) -> Self {
        .init(.unknownModel, "model `\(name)` does not exist; GET /v1/models lists the models, POST /v1/models or `osprey train` creates one")
    }

    static func misdirected(_ uid: String, owner: ClusterMember) -> Self {
        .init(.misdirected, "user `\(uid)` is served by node \(owner.name) at \(owner.address); send its requests there (a router made by `osprey router-config` does)",
              owner: owner)
    }

    static func unknownItem(_ item: String, model: String, version: Int) -> Self {
        .init(.unknownItem, "item `\(item)` is not in version \(version) of model `\(model)`; observations of it are still accepted and the next retrain learns it")
    }
}
