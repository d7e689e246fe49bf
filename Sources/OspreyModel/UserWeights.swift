import OspreyMath

/// One user's learned state: the ridge statistics behind `w_u`, and what the API reports.
///
/// It is a materialized view of the log (docs/architecture.md, "Storage semantics"): applying the same observations in log
/// order to the same starting state gives the same bits, which is how a restart restores it.
public struct UserWeights: Sendable, Equatable {
    /// The smoothing factor of ``runningLoss``: roughly the last 1/α observations count.
    public static let lossSmoothing = 0.1

    public var ridge: RidgeState
    /// Observations of this user in the log (not counting initial training data).
    public var observations: Int
    /// Exponentially weighted mean of the squared prequential error (each observation scored
    /// before it is learned), or nil before the first observation.
    public var runningLoss: Double?
    /// True when the user was not in the version's training data and started from the prior.
    public var bootstrapped: Bool

    public init(ridge: RidgeState, observations: Int = 0, runningLoss: Double? = nil, bootstrapped: Bool) {
        self.ridge = ridge
        self.observations = observations
        self.runningLoss = runningLoss
        self.bootstrapped = bootstrapped
    }

    /// Learns an observation of a known item (features padded to the stride, target = label −
    /// offset) and returns the squared prequential error. O(d²).
    @discardableResult
    public mutating func learn(features: UnsafePointer<Float>, target: Float) -> Double {
        let error = Double(ridge.update(features: features, target: target))
        return record(error * error)
    }

    /// Learns an observation as ``learn(features:target:)`` does, but records `scored`, its
    /// squared error as scored before anything learned it, as the prequential error: with items
    /// learning online the item learns first, and an error against its new row would already
    /// know the label. Returns `scored`. O(d²).
    @discardableResult
    public mutating func learn(features: UnsafePointer<Float>, target: Float, scored: Double) -> Double {
        ridge.update(features: features, target: target)
        return record(scored)
    }

    /// Counts an observation and folds its squared error into ``runningLoss``; returns it.
    private mutating func record(_ squared: Double) -> Double {
        observations += 1
        if let loss = runningLoss {
            runningLoss = loss + Self.lossSmoothing * (squared - loss)
        } else {
            runningLoss = squared
        }
        return squared
    }

    /// Counts an observation held out from learning (the validation sample) and returns its
    /// squared error under the current weights. O(d).
    public mutating func countHeldOut(features: UnsafePointer<Float>, target: Float) -> Double {
        observations += 1
        let error = Double(target - ridge.predict(features))
        return error * error
    }

    /// Counts an observation that cannot move the weights (the item is unknown to the version).
    public mutating func countWithoutLearning() {
        observations += 1
    }
}
