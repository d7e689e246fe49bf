import Foundation
import OspreyEngine
import OspreyModel
import OspreyStorage
import Synchronization

/// Stores holding one small trained model, for tests: in memory by default, or SQLite in a fresh
/// temporary directory, or PostgreSQL in a fresh database (``PostgresTestServer``), for tests
/// about storage. The ALS fit behind it is made once per process
/// for each set of parameters and stored anew for each test, so tests pay no training.
public struct TrainedStore: Sendable {
    /// Where the stores live.
    public enum Backend: String, Sendable, CaseIterable, CustomStringConvertible {
        case memory, sqlite, postgres

        public var description: String { rawValue }

        /// The backends that persist, as this machine can run them: SQLite, and PostgreSQL when
        /// its server is there (``PostgresTestServer/unavailable``).
        public static var durable: [Backend] { PostgresTestServer.unavailable == nil ? [.sqlite, .postgres] : [.sqlite] }

        /// Every backend this machine can run: memory and the durable ones (``durable``).
        public static var available: [Backend] { [.memory] + durable }
    }

    /// The stores the manager takes.
    public let stores: Stores
    /// The same stores as SQLite types (`.sqlite` only).
    public let sqlite: SQLiteStores?
    /// The data directory (`.sqlite` only).
    public let directory: String?
    /// The database's URL (`.postgres` only).
    public let postgresURL: String?
    /// The same stores as PostgreSQL types (`.postgres` only).
    public let postgres: PostgresStores?
    public let ratings: [Rating]
    public let model: String

    /// Generates `ratings` synthetic ratings, trains model `model` (d=4, λ=1 unless `lambda` is
    /// nil — chosen by validation then —, 5 iterations) and stores it as version 1.
    public init(model: String = "demo", users: Int = 60, items: Int = 40, ratings: Int = 1200, seed: UInt64 = 7,
                lambda: Float? = 1, backend: Backend = .memory) throws {
        let fixture = try Self.fixture(Key(model: model, users: users, items: items, ratings: ratings, seed: seed, lambda: lambda))
        self.ratings = fixture.ratings
        self.model = model
        switch backend {
        case .memory:
            stores = .inMemory()
            sqlite = nil
            directory = nil
            postgresURL = nil
            postgres = nil
        case .sqlite:
            let directory = NSTemporaryDirectory() + "osprey-test-" + UUID().uuidString
            let sqlite = try SQLiteStores(directory: directory, access: .unlocked)
            self.directory = directory
            self.sqlite = sqlite
            postgresURL = nil
            postgres = nil
            stores = sqlite.stores
        case .postgres:
            let url = try PostgresTestServer.freshDatabase()
            postgresURL = url
            sqlite = nil
            directory = nil
            let postgres = try PostgresStores(url: url, access: .unlocked)
            self.postgres = postgres
            stores = postgres.stores
        }
        try stores.storeVersion(fixture.result, reflecting: try stores.log.lastSequence(), trainingRatings: fixture.ratings, serve: true)
    }

    /// The stores as a restarted process finds them: SQLite opens the directory again and
    /// PostgreSQL the database (without the writer's lock, as the first stores are still open);
    /// in memory, the same stores (they outlive a manager as files do).
    public func reopen() throws -> Stores {
        if let postgresURL { return try PostgresStores(url: postgresURL, access: .unlocked).stores }
        return try reopenSQLite()?.stores ?? stores
    }

    /// The SQLite stores opened again (nil in memory).
    public func reopenSQLite() throws -> SQLiteStores? {
        try directory.map { try SQLiteStores(directory: $0, access: .unlocked) }
    }

    /// Deletes the directory, if any.
    public func remove() {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
    }

    private struct Key: Hashable {
        var model: String, users: Int, items: Int, ratings: Int, seed: UInt64, lambda: Float?
    }

    private struct Fixture: Sendable {
        var result: Trainer.Result
        var ratings: [Rating]
    }

    /// Trained fits, by parameters: immutable once made.
    private static let fixtures = Mutex<[Key: Fixture]>([:])

    private static func fixture(_ key: Key) throws -> Fixture {
        if let made = fixtures.withLock({ $0[key] }) { return made }
        let data = try SyntheticRatings(.init(users: key.users, items: key.items, ratings: key.ratings, dimension: 3, noise: 0.3,
                                              seed: key.seed))
        let ratings = data.ratings()
        let result = try Trainer(configuration: .init(factors: 4, lambda: key.lambda, iterations: 5, seed: key.seed))
            .train(model: key.model, number: 1, parent: nil, ratings: ratings)
        let made = Fixture(result: result, ratings: ratings)
        fixtures.withLock { $0[key] = made }
        return made
    }
}
