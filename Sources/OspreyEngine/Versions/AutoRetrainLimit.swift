/// How often a model may retrain by itself (docs/operations.md, "Staleness and auto-retrain"): at
/// least ``minimumInterval`` between two automatic retrains of a model, and at most ``perHour``
/// of them in any hour. A model that stays stale is retrained again once the limit allows; a
/// requested retrain is never limited. A pure rule, checked against the starts so far.
public struct AutoRetrainLimit: Sendable, Equatable {
    /// The least time between the starts of two automatic retrains of one model.
    public var minimumInterval: Duration
    /// The most automatic retrains of one model started in any hour.
    public var perHour: Int

    /// 30 s apart, at most 20 an hour by default: a drifting model follows the drift in a few
    /// retrains, and a storm of retrains (one a second) cannot happen.
    public init(minimumInterval: Duration = .seconds(30), perHour: Int = 20) {
        precondition(minimumInterval >= .zero && perHour >= 1, "a limit needs a non-negative interval and at least one retrain an hour")
        self.minimumInterval = minimumInterval
        self.perHour = perHour
    }

    /// No limit (tests of the retrain mechanism itself).
    public static let none = AutoRetrainLimit(minimumInterval: .zero, perHour: .max)

    /// The first moment from `now` on when an automatic retrain may start, after automatic
    /// retrains started at `starts` (oldest first). O(starts).
    public func nextAllowed(now: ContinuousClock.Instant, starts: [ContinuousClock.Instant]) -> ContinuousClock.Instant {
        var next = now
        if let last = starts.last { next = max(next, last + minimumInterval) }
        let lastHour = starts.filter { next - $0 < .seconds(3600) }
        if lastHour.count >= perHour { next = max(next, lastHour[lastHour.count - perHour] + .seconds(3600)) }
        return next
    }

    /// Nil when an automatic retrain may start at `now` after automatic retrains started at
    /// `starts` (oldest first), else why not. O(starts).
    public func refusal(now: ContinuousClock.Instant, starts: [ContinuousClock.Instant]) -> String? {
        if let last = starts.last, now - last < minimumInterval {
            return "the last automatic retrain started \(now - last) ago; at least \(minimumInterval) apart"
        }
        let lastHour = starts.filter { now - $0 < .seconds(3600) }.count
        if lastHour >= perHour { return "\(lastHour) automatic retrains in the last hour; at most \(perHour)" }
        return nil
    }
}
