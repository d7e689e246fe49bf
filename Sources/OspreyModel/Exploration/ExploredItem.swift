/// One item of an exploring top-k answer, in the order shown.
public struct ExploredItem: Sendable, Equatable {
    /// The item's row in the feature function's catalogue.
    public var row: Int
    /// The model's estimate `offset + w_u · f(x)`.
    public var score: Float
    /// What the policy ranked by when it is not the score: the upper confidence bound (LinUCB)
    /// or the score under the sampled weights (Thompson); nil for greedy and ε-greedy.
    public var exploring: Float?
    /// The probability that the policy shows this item at this position (marginal over the
    /// policy's randomness, given the user's state and the candidates); nil when it was not
    /// estimated (Thompson with no propensity samples). See ``ExplorationSelector``.
    public var propensity: Double?

    public init(row: Int, score: Float, exploring: Float? = nil, propensity: Double?) {
        self.row = row
        self.score = score
        self.exploring = exploring
        self.propensity = propensity
    }
}
