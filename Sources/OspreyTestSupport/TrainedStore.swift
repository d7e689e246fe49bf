import Foundation
import OspreyModel
import OspreyStorage

/// A store in a fresh temporary directory holding one small trained model, for tests.
public struct TrainedStore: Sendable {
    public let directory: String
    public let store: SQLiteStore
    public let ratings: [Rating]
    public let model: String

    /// Generates `ratings` synthetic ratings, trains model `model` (d=4, λ=1 unless `lambda` is
    /// nil — chosen by validation then —, 5 iterations) and stores it as version 1.
    public init(model: String = "demo", users: Int = 60, items: Int = 40, ratings: Int = 1200, seed: UInt64 = 7,
                lambda: Float? = 1) throws {
        directory = NSTemporaryDirectory() + "osprey-test-" + UUID().uuidString
        store = try SQLiteStore(directory: directory)
        let data = try SyntheticRatings(.init(users: users, items: items, ratings: ratings, dimension: 3, noise: 0.3, seed: seed))
        self.ratings = data.ratings()
        self.model = model
        let result = try Trainer(configuration: .init(factors: 4, lambda: lambda, iterations: 5, seed: seed))
            .train(model: model, number: 1, parent: nil, ratings: self.ratings)
        try store.createVersion(result, reflecting: try store.lastSequence(), trainingRatings: self.ratings, serve: true)
    }

    /// Opens the same directory again, as a restarted process would.
    public func reopen() throws -> SQLiteStore { try SQLiteStore(directory: directory) }

    /// Deletes the directory.
    public func remove() { try? FileManager.default.removeItem(atPath: directory) }
}
