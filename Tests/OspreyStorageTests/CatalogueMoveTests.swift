import Foundation
import GRDB
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// The catalogue has its own database, `catalog.sqlite`; a data directory from before keeps it in
/// `osprey.sqlite`, and opening the directory moves it, whole and once.
struct CatalogueMoveTests {
    func temporaryDirectory() throws -> String {
        let dir = NSTemporaryDirectory() + "osprey-catalogue-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    func catalogueTables(in database: SQLiteDatabase) throws -> [String] {
        try database.pool.read { db in try ["model", "version", "training_rating"].filter { try db.tableExists($0) } }
    }

    @Test func aNewDirectoryHasTheCatalogueInItsOwnFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stores = try SQLiteStores(directory: dir, access: .unlocked)
        #expect(stores.versions.database.path.hasSuffix("/catalog.sqlite"))
        #expect(try catalogueTables(in: stores.log.database).isEmpty)
        #expect(try catalogueTables(in: stores.versions.database) == ["model", "version", "training_rating"])
    }

    @Test func anOldDirectorysCatalogueIsMovedOnce() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try TrainedStore()
        let version = try t.stores.versions.loadVersion(model: "demo", number: 1)
        // Written as before: the catalogue in the log's database.
        do {
            let old = try SQLiteDatabase(path: dir + "/" + SQLiteStores.fileName, migrator: SQLiteObservationLog.migrator, lock: nil)
            // Today's insert names the columns later migrations added to `version`; the move
            // copies the old columns only.
            try old.pool.write { try $0.execute(sql: "ALTER TABLE version ADD COLUMN computed_kind TEXT; ALTER TABLE version ADD COLUMN computed BLOB") }
            let legacy = SQLiteVersionStore(database: old)
            try legacy.insertVersion(version, trainingRatings: t.ratings, serve: true)
            try legacy.setExplorationPolicy(model: "demo", policy: "linucb(1.0)")
            try legacy.setCompetition(model: "demo", CompetitionRecord(challenger: 1, allocation: "split(0.1)", since: 5))
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/" + SQLiteVersionStore.fileName))
        for _ in 0..<2 {
            let stores = try SQLiteStores(directory: dir, access: .unlocked)
            #expect(try catalogueTables(in: stores.log.database).isEmpty, "moved out of the log's database")
            let moved = try stores.versions.loadVersion(model: "demo", number: 1)
            #expect(moved.features.catalog.ids == version.features.catalog.ids && moved.prior == version.prior)
            #expect(try stores.versions.models().map(\.name) == ["demo"] && stores.versions.versions(model: "demo").count == 1)
            #expect(try stores.versions.initialRatings(model: "demo") == t.ratings)
            #expect(try stores.versions.explorationPolicies() == ["demo": "linucb(1.0)"])
            #expect(try stores.versions.competitions()["demo"]?.allocation == "split(0.1)")
        }
    }

    /// A move that stopped after its copy, before the drop, only drops the old tables the next
    /// time: the copy is not repeated.
    @Test func aMoveStoppedAfterItsCopyOnlyDrops() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let t = try TrainedStore()
        do {
            let stores = try SQLiteStores(directory: dir, access: .unlocked)
            try stores.versions.insertVersion(try t.stores.versions.loadVersion(model: "demo", number: 1), trainingRatings: [], serve: true)
            // The old tables as a stopped move leaves them (their rows already copied).
            try stores.log.database.pool.write { db in
                try db.execute(sql: """
                    CREATE TABLE model (name TEXT, serving_version INTEGER, created_at REAL, exploration TEXT,
                                        challenger_version INTEGER, challenger_allocation TEXT, challenger_since REAL);
                    INSERT INTO model VALUES ('demo', 1, 0, 'greedy', NULL, NULL, NULL);
                    CREATE TABLE version (model TEXT);
                    CREATE TABLE training_rating (model TEXT);
                    """)
            }
        }
        let stores = try SQLiteStores(directory: dir, access: .unlocked)
        #expect(try catalogueTables(in: stores.log.database).isEmpty)
        #expect(try stores.versions.models().map(\.name) == ["demo"], "copied once, not twice")
    }
}
