/// A challenger version competing with the serving one for traffic, as the catalogue keeps it.
public struct CompetitionRecord: Sendable, Equatable {
    public var challenger: Int
    /// The allocation in its API form, e.g. `split(0.1)` or `thompson`.
    public var allocation: String
    /// When it started (seconds since the epoch): names the competition's user assignments.
    public var since: Double

    public init(challenger: Int, allocation: String, since: Double) {
        self.challenger = challenger
        self.allocation = allocation
        self.since = since
    }
}

/// One user's allocation in a competition.
public struct Assignment: Sendable, Equatable {
    public var model: String
    public var since: Double
    public var uid: String
    public var version: Int

    public init(model: String, since: Double, uid: String, version: Int) {
        self.model = model
        self.since = since
        self.uid = uid
        self.version = version
    }
}
