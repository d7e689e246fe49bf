import OspreyMath

/// Staleness detection (Velox §4.3) as a plain value: it is fed the prequential loss of each
/// observation (scored before it is learned) and keeps its mean over a sliding window. The
/// baseline is the version's validation loss from training (its validation RMSE squared), or,
/// for a version trained without a validation split, the first full window after it started
/// serving; once the windowed loss rises past `threshold ×` the baseline, the model is stale
/// (and stays so until another version serves).
///
/// Next to it, a validation sample (Velox §4.3): a fixed share of observations, chosen by their
/// log sequence (so a replay holds out the same ones), is scored but never learned — neither
/// online nor by a retrain — so its windowed loss estimates how well the model generalizes to
/// ratings it has not fitted.
///
/// And an exploration pool (Velox §4.3): observations answering items a policy showed only
/// because it explored (outside its greedy top-k) are not shaped by what the model already
/// believes. They are scored before they are learned into their own window; once that window is
/// full its first mean is the pool's baseline, and from then on staleness is judged on the pool
/// (its windowed loss past `threshold ×` its baseline) instead of on all observations.
public struct QualityMonitor: Sendable, Equatable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Observations per window.
        public var window: Int
        /// Stale when the windowed loss exceeds this multiple of the baseline.
        public var threshold: Double
        /// The share of observations held out from learning as the validation sample (0 for none).
        /// Keep it fixed for a data directory: a replay decides again which ones are held out.
        public var validationFraction: Double
        /// Held-out observations per window of the validation loss.
        public var validationWindow: Int

        public init(window: Int = 1000, threshold: Double = 1.5, validationFraction: Double = 0.02, validationWindow: Int = 200) {
            precondition(window >= 1 && threshold > 1 && validationWindow >= 1)
            precondition(validationFraction >= 0 && validationFraction < 1)
            self.window = window
            self.threshold = threshold
            self.validationFraction = validationFraction
            self.validationWindow = validationWindow
        }

        /// Whether the observation logged at `seq` belongs to the validation sample: a hash of the
        /// sequence number, so the choice is the same live, on replay and in a retrain. O(1).
        public func holdsOut(seq: Int64) -> Bool {
            guard validationFraction > 0 else { return false }
            var rng = SplitMix64(seed: UInt64(bitPattern: seq) ^ 0x5EED_5A3F_1E0D_7A11)
            return rng.nextUniform() < validationFraction
        }
    }

    public let configuration: Configuration
    private var ring: [Double]
    private var next = 0
    private var filled = 0
    private var sum = 0.0
    /// The first full window's mean loss.
    public private(set) var baseline: Double?
    /// True once the windowed loss has risen past the threshold.
    public private(set) var stale = false
    /// Observations scored.
    public private(set) var scored = 0
    /// The validation sample's latest losses.
    private var validation: [Double] = []
    private var validationNext = 0
    /// Held-out observations scored.
    public private(set) var validationScored = 0
    /// The exploration pool's latest losses (a ring of `validationWindow`), sum and baseline.
    private var exploration: [Double] = []
    private var explorationNext = 0
    private var explorationSum = 0.0
    /// The exploration pool's first full window's mean loss.
    public private(set) var explorationBaseline: Double?
    /// Observations answering exploratory choices scored.
    public private(set) var explorationScored = 0

    public init(configuration: Configuration = .init(), baseline: Double? = nil) {
        self.configuration = configuration
        self.baseline = baseline.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        ring = [Double](repeating: 0, count: configuration.window)
    }

    /// The mean squared error of the latest `validationWindow` held-out observations (fewer
    /// until that many were scored), or nil before the first. O(validationWindow).
    public var validationLoss: Double? {
        validation.isEmpty ? nil : validation.reduce(0, +) / Double(validation.count)
    }

    /// Records the squared error of a held-out observation (scored, never learned). O(1).
    public mutating func recordValidation(_ loss: Double) {
        guard loss.isFinite else { return }
        if validation.count < configuration.validationWindow {
            validation.append(loss)
        } else {
            validation[validationNext] = loss
        }
        validationNext = (validationNext + 1) % configuration.validationWindow
        validationScored += 1
    }

    /// The mean squared error of the exploration pool's latest `validationWindow` observations,
    /// once that many were scored.
    public var explorationLoss: Double? {
        exploration.count == configuration.validationWindow ? explorationSum / Double(exploration.count) : nil
    }

    /// Records the prequential squared error of an observation answering an exploratory choice
    /// (it is learned too). Returns true when it made the model stale. O(1).
    @discardableResult
    public mutating func recordExploration(_ loss: Double) -> Bool {
        guard loss.isFinite else { return false }
        let window = configuration.validationWindow
        if exploration.count < window {
            exploration.append(loss)
        } else {
            explorationSum -= exploration[explorationNext]
            exploration[explorationNext] = loss
        }
        explorationSum += loss
        explorationNext = (explorationNext + 1) % window
        explorationScored += 1
        if explorationNext == 0 { explorationSum = exploration.reduce(0, +) }
        guard let current = explorationLoss else { return false }
        guard let base = explorationBaseline, base > 0 else {
            explorationBaseline = current
            return false
        }
        if !stale && current > configuration.threshold * base {
            stale = true
            return true
        }
        return false
    }

    /// The mean loss of the last `window` observations, once that many were scored.
    public var windowedLoss: Double? {
        filled == configuration.window ? sum / Double(filled) : nil
    }

    /// Records one prequential squared error. Returns true when this observation made the model
    /// stale. O(1).
    @discardableResult
    public mutating func record(_ loss: Double) -> Bool {
        guard loss.isFinite else { return false }
        if filled == configuration.window { sum -= ring[next] } else { filled += 1 }
        ring[next] = loss
        sum += loss
        next = (next + 1) % configuration.window
        scored += 1
        // Re-sum now and then so rounding in the running sum cannot accumulate.
        if next == 0 { sum = ring.prefix(filled).reduce(0, +) }
        guard let current = windowedLoss else { return false }
        guard let base = baseline else {
            baseline = current
            return false
        }
        // The exploration pool, once it has a baseline, is the better judge.
        if !stale && explorationBaseline == nil && current > configuration.threshold * base {
            stale = true
            return true
        }
        return false
    }
}
