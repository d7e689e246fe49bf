/// Staleness detection (Velox §4.3) as a plain value: it is fed the prequential loss of each
/// observation (scored before it is learned) and keeps its mean over a sliding window. The
/// baseline is the version's validation loss from training (its validation RMSE squared), or,
/// for a version trained without a validation split, the first full window after it started
/// serving; once the windowed loss rises past `threshold ×` the baseline, the model is stale
/// (and stays so until another version serves).
public struct QualityMonitor: Sendable, Equatable {
    /// Settings.
    public struct Configuration: Sendable, Equatable {
        /// Observations per window.
        public var window: Int
        /// Stale when the windowed loss exceeds this multiple of the baseline.
        public var threshold: Double

        public init(window: Int = 1000, threshold: Double = 1.5) {
            precondition(window >= 1 && threshold > 1)
            self.window = window
            self.threshold = threshold
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

    public init(configuration: Configuration = .init(), baseline: Double? = nil) {
        self.configuration = configuration
        self.baseline = baseline.flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        ring = [Double](repeating: 0, count: configuration.window)
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
        if !stale && current > configuration.threshold * base {
            stale = true
            return true
        }
        return false
    }
}
