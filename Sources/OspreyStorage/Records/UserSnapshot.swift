import OspreyModel

/// A snapshot of a version's user weights. Each user's row records the log sequence its state
/// reflects; `seq` is a sequence every row has reached. Restoring means replaying the log after
/// `seq`, skipping for each user what its row already reflects — so a snapshot written in
/// several transactions, and cut short by a crash, still restores exactly.
public struct UserSnapshot: Sendable {
    public var seq: Int64
    public var users: [String: UserWeights]
    /// Users whose rows reflect the log beyond `seq`, and how far.
    public var ahead: [String: Int64]

    public init(seq: Int64, users: [String: UserWeights], ahead: [String: Int64] = [:]) {
        self.seq = seq
        self.users = users
        self.ahead = ahead
    }

    /// True when the user's stored state already reflects logged observation `seq`.
    public func reflects(uid: String, seq logSeq: Int64) -> Bool {
        logSeq <= seq || logSeq <= ahead[uid, default: seq]
    }
}

/// One user's weights as a snapshot stores them.
public struct SnapshotRow: Sendable {
    public var uid: String
    public var state: [UInt8]
    /// `w_u` alone (`dimension` floats), stored beside the full state so that a start loads
    /// every user's weights without reading the ridge statistics (see ``StoredWeights``).
    public var weights: [Float]
    public var observations: Int
    public var runningLoss: Double?
    public var bootstrapped: Bool
    /// The log sequence this state reflects.
    public var seq: Int64

    /// Serializes the weights. O(d²).
    public init(uid: String, weights: UserWeights, seq: Int64) {
        self.uid = uid
        state = weights.ridge.serialized()
        self.weights = Array(weights.ridge.weights[0..<weights.ridge.dimension])
        observations = weights.observations
        runningLoss = weights.runningLoss
        bootstrapped = weights.bootstrapped
        self.seq = seq
    }
}

/// One user's weights `w_u` and small fields as the compact snapshot table stores them: what a
/// start loads for every user (the cold tier), without the d×d ridge statistics.
public struct StoredWeights: Sendable {
    public var uid: String
    /// `w_u`, `dimension` floats.
    public var weights: [Float]
    public var observations: Int
    public var runningLoss: Double?
    public var bootstrapped: Bool
    /// The log sequence this state reflects.
    public var seq: Int64

    public init(uid: String, weights: [Float], observations: Int, runningLoss: Double?, bootstrapped: Bool, seq: Int64) {
        self.uid = uid
        self.weights = weights
        self.observations = observations
        self.runningLoss = runningLoss
        self.bootstrapped = bootstrapped
        self.seq = seq
    }
}

/// An item a user of a model observed (logged an observation of), as the snapshot store records
/// it for `exclude_observed`.
public struct ObservedItem: Sendable, Hashable {
    public var uid: String
    public var item: String
    public init(uid: String, item: String) {
        self.uid = uid
        self.item = item
    }
}
