import ArgumentParser
import Foundation

/// The ranges the numeric options accept, in one place. Each command's `validate()` checks its
/// options against them, so a value out of range is a usage error (exit 64) before anything
/// runs, never a trap in an allocation or a conversion (docs/operations.md, "Configuration").
/// The upper bounds are far beyond what Osprey is run with; a combination of large values can
/// still need more memory than a machine has.
enum Bounds {
    /// Users of a synthetic ratings file (`generate`).
    static let users = 1...10_000_000
    /// Items of a synthetic ratings file.
    static let items = 1...10_000_000
    /// Ratings of a synthetic ratings file.
    static let ratings = 1...100_000_000
    /// Latent dimension d (the trainer's limit, `Trainer.Configuration`).
    static let dimension = 1...512
    /// ALS iterations (the trainer's limit).
    static let iterations = 1...1000
    /// Zipf exponent of item popularity: beyond 3 nearly every draw hits a few items, and
    /// drawing distinct (user, item) pairs would take hours.
    static let zipf = 0.0...3.0
    /// Standard deviation of simulated noise.
    static let noise = 0.0...1000.0
    /// A share (drift, its position, the cluster spread).
    static let share = 0.0...1.0
    /// True-model values `generate` draws: (users + items) × d Doubles.
    static let generatedFactors = 250_000_000

    /// Rounds of `simulate`.
    static let rounds = 1...10_000_000
    /// Users and items of a simulated world.
    static let worldSize = 1...1_000_000
    /// Zipf exponent of simulated user arrivals (beyond 10, one user arrives every round).
    static let userZipf = 0.0...10.0
    /// Ridge values the simulated learner keeps: a (d + 1)² state per user it meets.
    static let simulatedStates = 250_000_000

    /// A TCP port.
    static let port = 0...65_535
    /// Milliseconds between publications of items' online rows (a day at most).
    static let publishMilliseconds = 1...86_400_000
    /// A request body's largest size: at least 1 KiB, at most 1 GiB.
    static let bodyBytes = 1024...(1 << 30)
    /// Entries of a cache (prediction, feature, repopulation), allocated up front.
    static let cacheEntries = 0...10_000_000
    /// Observations per window of the staleness monitor (a ring of that many Doubles per model).
    static let staleWindow = 10...10_000_000
    /// Event-loop threads.
    static let eventLoops = 1...256
    /// Scan threads (0: none).
    static let scanThreads = 0...256
    /// Posterior draws behind a Thompson propensity.
    static let posteriorSamples = 0...10_000
    /// Hours a decision is kept (about a century).
    static let retentionHours = 0.0...1_000_000.0
    /// Bootstrap resamples.
    static let bootstrap = 0...100_000
    /// Seconds between two automatic retrains of a model (up to a day).
    static let autoRetrainInterval = 0.0...86_400.0
    /// Automatic retrains of a model in an hour.
    static let autoRetrainsPerHour = 1...3600

    /// Throws a `ValidationError` unless `value` of `--option` is in `range`.
    static func check(_ option: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard !range.contains(value) else { return }
        if range.upperBound == .max { throw ValidationError("--\(option) must be at least \(range.lowerBound)") }
        throw ValidationError("--\(option) must be between \(range.lowerBound) and \(range.upperBound)")
    }

    /// Throws a `ValidationError` unless `value` of `--option` is in `range` (NaN never is).
    static func check(_ option: String, _ value: Double, _ range: ClosedRange<Double>) throws {
        guard !range.contains(value) else { return }
        throw ValidationError("--\(option) must be a number between \(text(range.lowerBound)) and \(text(range.upperBound))")
    }

    /// Throws a `ValidationError` unless `value` of `--option` is a finite number above 0.
    static func checkPositive(_ option: String, _ value: Double) throws {
        guard value > 0, value.isFinite else { throw ValidationError("--\(option) must be a positive number") }
    }

    private static func text(_ x: Double) -> String {
        x == x.rounded() && abs(x) < 1e15 ? String(Int64(x)) : String(x)
    }
}
