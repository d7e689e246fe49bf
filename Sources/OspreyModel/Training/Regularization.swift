import Foundation

/// A ridge penalty for ALS: a fixed λ for every row, or λ times the row's rating count.
public struct Regularization: Sendable, Equatable, CustomStringConvertible {
    public var lambda: Float
    public var scaled: Bool

    public init(lambda: Float, scaled: Bool) {
        self.lambda = lambda
        self.scaled = scaled
    }

    /// The candidates tried by default when λ is chosen by validation.
    public static let candidates: [Regularization] =
        [1, 3, 10, 30].map { .init(lambda: $0, scaled: false) } + [0.03, 0.1, 0.3].map { .init(lambda: $0, scaled: true) }

    /// The penalty of a user not in the training data: with a scaled λ, as for a user with the
    /// median number of ratings, so the prior is not swept away by the first observation.
    public func newUserPenalty(medianRatings: Int) -> Float {
        scaled ? lambda * Float(max(1, medianRatings)) : lambda
    }

    public var description: String {
        let value = String(format: "%g", lambda)
        return scaled ? "lambda=\(value)·n" : "lambda=\(value)"
    }
}
