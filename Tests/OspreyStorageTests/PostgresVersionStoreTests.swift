import Foundation
import OspreyModel
import OspreyStorage
import OspreyTestSupport
import Testing

/// What the contract tests leave out of ``PostgresVersionStore``: many ratings across chunks,
/// erasure, version lists and their errors, competitions and policies of several models, and
/// repeated ids in the catalogue; where handy, checked against the SQLite store's answers.
@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "needs PostgreSQL's server"))
struct PostgresVersionStoreTests {
    /// A fresh store on a fresh database, and a function opening it again.
    func withStore(_ body: (PostgresVersionStore, _ reopen: () throws -> PostgresVersionStore) throws -> Void) throws {
        let url = try PostgresTestServer.freshDatabase()
        try body(try PostgresVersionStore(database: try PostgresDatabase(url: url))) {
            try PostgresVersionStore(database: try PostgresDatabase(url: url))
        }
    }

    /// A SQLite catalogue in a temporary directory, to compare answers with.
    func withSQLite(_ body: (any VersionStore) throws -> Void) throws {
        let directory = NSTemporaryDirectory() + "osprey-pg-versions-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(try SQLiteStores(directory: directory, access: .unlocked).stores.versions)
    }

    static func ratings(_ count: Int) -> [Rating] {
        (0..<count).map { Rating(uid: "u\($0 % 37)", item: "i\(($0 * 7) % 101)", label: Float($0 % 5) + 0.5, timestamp: Double($0) + 0.25) }
    }

    @Test func initialRatingsRoundTripInOrderAcrossChunks() throws {
        let ratings = Self.ratings(53_000)  // more than one chunk (50,000)
        try withStore { store, reopen in
            try store.insertVersion(StoreContractTests.version("m", 1), trainingRatings: ratings, serve: true)
            try store.insertVersion(StoreContractTests.version("other", 1), trainingRatings: Array(ratings.prefix(3)), serve: true)
            #expect(try reopen().initialRatings(model: "m") == ratings)
            #expect(try store.initialRatings(model: "other") == Array(ratings.prefix(3)))
            #expect(try store.initialRatings(model: "nobody").isEmpty)
            let expected = ratings.filter { $0.uid == "u5" }.map(\.item)
            #expect(try store.trainingItems(model: "m", uid: "u5").sorted() == expected.sorted(), "with repeats")
            #expect(try store.trainingItems(model: "m", uid: "nobody").isEmpty)
        }
    }

    @Test func erasingAUsersTrainingRatingsKeepsTheOthersInOrder() throws {
        let ratings = Self.ratings(2_000)
        try withStore { store, reopen in
            try store.insertVersion(StoreContractTests.version("m", 1), trainingRatings: ratings, serve: true)
            try store.insertVersion(StoreContractTests.version("other", 1), trainingRatings: ratings, serve: true)
            let erased = ratings.filter { $0.uid == "u3" }.count
            #expect(try store.deleteTrainingRatings(model: "m", uid: "u3") == erased)
            #expect(try store.deleteTrainingRatings(model: "m", uid: "u3") == 0, "idempotent")
            #expect(try reopen().initialRatings(model: "m") == ratings.filter { $0.uid != "u3" })
            #expect(try store.trainingItems(model: "m", uid: "u3").isEmpty)
            #expect(try store.trainingItems(model: "other", uid: "u3").count == erased, "only that model's")
        }
    }

    @Test func versionsListOldestFirstAndLoadWhole() throws {
        try withStore { store, reopen in
            for number in [2, 1, 3] {
                try store.insertVersion(StoreContractTests.version("m", number, parent: number == 1 ? nil : 1), trainingRatings: [],
                                        serve: number == 2)
            }
            let records = try reopen().versions(model: "m")
            #expect(records.map(\.number) == [1, 2, 3])
            #expect(records.map(\.status) == [.built, .serving, .built])
            #expect(records.map(\.parent) == [nil, 1, 1])
            #expect(records[0].dimension == 3 && records[0].items == 2 && records[0].createdAt == Date(timeIntervalSince1970: 1_000))
            #expect(records[0].metadata == StoreContractTests.version("m", 1).metadata)
            #expect(try store.versions(model: "nobody").isEmpty)
            #expect(try store.models() == [ModelRecord(name: "m", servingVersion: 2, createdAt: store.models()[0].createdAt)])

            let written = StoreContractTests.version("m", 3, parent: 1)
            let loaded = try reopen().loadVersion(model: "m", number: 3)
            #expect(loaded.features.table == written.features.table && loaded.features.offsets == written.features.offsets)
            #expect(loaded.features.catalog.ids == written.features.catalog.ids && loaded.prior == written.prior)
            #expect(loaded.lambda == written.lambda && loaded.metadata == written.metadata && loaded.parent == 1)
            #expect(loaded.createdAt == written.createdAt && loaded.computed == nil)
        }
    }

    @Test func loadingAnUnknownVersionIsNotFound() throws {
        try withStore { store, _ in
            try store.insertVersion(StoreContractTests.version("m", 1), trainingRatings: [], serve: true)
            #expect { try store.loadVersion(model: "m", number: 2) } throws: { ($0 as? StorageError)?.code == .notFound }
            #expect { try store.loadVersion(model: "nobody", number: 1) } throws: { ($0 as? StorageError)?.code == .notFound }
            #expect { try store.setServing(model: "m", version: 2) } throws: { ($0 as? StorageError)?.code == .notFound }
        }
    }

    /// A taken number is a conflict, and the failed insert writes nothing: not its ratings, not
    /// a change of serving version.
    @Test func insertingATakenVersionIsAConflictAndWritesNothing() throws {
        try withStore { store, reopen in
            try store.insertVersion(StoreContractTests.version("m", 1), trainingRatings: Self.ratings(3), serve: true)
            try store.insertVersion(StoreContractTests.version("m", 2), trainingRatings: [], serve: false)
            #expect {
                try store.insertVersion(StoreContractTests.version("m", 2), trainingRatings: Self.ratings(10), serve: true)
            } throws: { ($0 as? StorageError)?.code == .conflict }
            let again = try reopen()
            #expect(try again.initialRatings(model: "m") == Self.ratings(3))
            #expect(try again.models()[0].servingVersion == 1)
            #expect(try again.versions(model: "m").map(\.status) == [.serving, .built])
            // The same number in another model is no conflict.
            try store.insertVersion(StoreContractTests.version("other", 2), trainingRatings: [], serve: true)
        }
    }

    @Test func failingAndDeletingVersionsTouchOnlyThatModel() throws {
        try withStore { store, reopen in
            for model in ["m", "other"] {
                try store.insertVersion(StoreContractTests.version(model, 1), trainingRatings: [], serve: true)
                for number in [2, 3, 4] {
                    try store.insertVersion(StoreContractTests.version(model, number), trainingRatings: [], serve: false)
                }
            }
            #expect(try store.failUnservedVersions(model: "m") == [2, 3, 4])
            #expect(try store.failUnservedVersions(model: "m").isEmpty)
            #expect(try reopen().versions(model: "other").map(\.status) == [.serving, .built, .built, .built])
            try store.deleteVersions(model: "m", [2, 4, 9])
            try store.deleteVersions(model: "m", [])
            #expect(try reopen().versions(model: "m").map(\.number) == [1, 3])
            #expect(try reopen().versions(model: "m").map(\.status) == [.serving, .failed])
            #expect(try reopen().versions(model: "other").map(\.number) == [1, 2, 3, 4])
        }
    }

    @Test func competitionsAndPoliciesAreEachModels() throws {
        try withStore { store, reopen in
            for model in ["a", "b"] {
                try store.insertVersion(StoreContractTests.version(model, 1), trainingRatings: [], serve: true)
                try store.insertVersion(StoreContractTests.version(model, 2), trainingRatings: [], serve: false)
            }
            try store.setCompetition(model: "a", CompetitionRecord(challenger: 2, allocation: "thompson", since: 12.5))
            try store.setCompetition(model: "b", CompetitionRecord(challenger: 2, allocation: "split(0.1)", since: 13))
            #expect(try reopen().competitions() == ["a": CompetitionRecord(challenger: 2, allocation: "thompson", since: 12.5),
                                                    "b": CompetitionRecord(challenger: 2, allocation: "split(0.1)", since: 13)])
            // Ending a competition retires its challenger.
            try store.setCompetition(model: "b", nil)
            #expect(try store.versions(model: "b").map(\.status) == [.serving, .retired])
            try store.promoteChallenger(model: "a", version: 2)
            #expect(try reopen().competitions().isEmpty)
            #expect(try store.versions(model: "a").map(\.status) == [.retired, .serving])
            #expect(try store.models().map(\.servingVersion) == [2, 1])

            #expect(try store.explorationPolicies() == ["a": "greedy", "b": "greedy"])
            try store.setExplorationPolicy(model: "b", policy: "thompson")
            #expect(try reopen().explorationPolicies() == ["a": "greedy", "b": "thompson"])
            #expect { try store.setExplorationPolicy(model: "c", policy: "greedy") } throws: { ($0 as? StorageError)?.code == .notFound }
            #expect { try store.setCompetition(model: "c", nil) } throws: { ($0 as? StorageError)?.code == .notFound }
        }
    }

    /// A repeated id keeps its first place and its last write, within one call and across calls,
    /// as in the SQLite store.
    @Test func catalogueOrderWithARepeatedIdMatchesSQLite() throws {
        let first = [CatalogueItem(id: "b", attributes: ["n": .number(1)]), CatalogueItem(id: "a", attributes: ["t": .strings(["x", "y"])]),
                     CatalogueItem(id: "b", attributes: ["n": .number(2)], hidden: true), CatalogueItem(id: "c")]
        let second = [CatalogueItem(id: "d"), CatalogueItem(id: "a", attributes: ["s": .string("z")]), CatalogueItem(id: "d", hidden: true)]
        var expected: [CatalogueItem] = []
        try withSQLite { sqlite in
            try sqlite.putItems(model: "m", first)
            try sqlite.putItems(model: "m", second)
            expected = try sqlite.catalogueItems(model: "m")
        }
        #expect(expected.map(\.id) == ["b", "a", "c", "d"])
        try withStore { store, reopen in
            try store.putItems(model: "m", first)
            try store.putItems(model: "m", second)
            #expect(try reopen().catalogueItems(model: "m") == expected)
            #expect(try store.catalogueItem(model: "m", id: "b") == CatalogueItem(id: "b", attributes: ["n": .number(2)], hidden: true))
            #expect(try store.catalogueItem(model: "m", id: "d")?.hidden == true)
        }
    }
}
