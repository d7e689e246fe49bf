import Foundation
import OspreyMath
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyStorage

/// Only one process writes a data directory (docs/operations.md, "Where the data lives"). An
/// `flock` taken through a second open of the lock file conflicts with the first even in one
/// process, so these tests see what a second `osprey serve` or `osprey retrain` sees.
struct DataDirectoryLockTests {
    func withDirectory(_ body: (String) throws -> Void) throws {
        let directory = NSTemporaryDirectory() + "osprey-lock-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory)
    }

    @Test func aSecondWriterIsRefusedNamingTheDirectoryAndTheHolder() throws {
        try withDirectory { directory in
            let first = try SQLiteStores(directory: directory)
            let error = #expect(throws: StorageError.self) { try SQLiteStores(directory: directory) }
            #expect(error?.code == .locked)
            #expect(error?.message.contains(directory) == true)
            #expect(error?.message.contains("in use by another Osprey process (pid \(getpid()))") == true)
            #expect(try String(contentsOfFile: directory + "/" + DataDirectoryLock.fileName, encoding: .utf8) == "\(getpid())\n")
            _ = try first.versions.models()
        }
    }

    /// The lock goes with the last of the four stores, not with the `SQLiteStores` value: the
    /// engine keeps only the stores.
    @Test func theLockIsHeldWhileAnyStoreIsAliveAndReleasedAfter() throws {
        try withDirectory { directory in
            var log: SQLiteObservationLog? = try SQLiteStores(directory: directory).log
            #expect(throws: StorageError.self) { try SQLiteStores(directory: directory) }
            #expect(try log?.lastSequence() == 0)
            log = nil
            let again = try SQLiteStores(directory: directory)
            #expect(try again.log.lastSequence() == 0)
        }
    }

    /// A lock file left by a process that ended (as after SIGKILL) does not block: only a live
    /// `flock` does.
    @Test func aLeftoverLockFileDoesNotBlock() throws {
        try withDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try "999999\n".write(toFile: directory + "/" + DataDirectoryLock.fileName, atomically: true, encoding: .utf8)
            let stores = try SQLiteStores(directory: directory)
            #expect(try stores.versions.models().isEmpty)
        }
    }

    /// Readers do not take the lock: `osprey models` works beside a server, and sees its commits.
    @Test func aReadOnlyOpenWorksBesideTheHolderAndWritesNothing() throws {
        try withDirectory { directory in
            let writer = try SQLiteStores(directory: directory)
            _ = try writer.log.append([Observation(model: "m", uid: "u", item: "i", label: 1, time: 1)])
            let reader = try SQLiteStores(directory: directory, access: .readOnly)
            #expect(try reader.log.observationCount(model: "m") == 1)
            #expect(throws: (any Error).self) { try reader.log.append([Observation(model: "m", uid: "u", item: "i", label: 2, time: 2)]) }
            #expect(throws: StorageError.self) { try SQLiteStores(directory: directory + "-missing", access: .readOnly) }
            #expect(!FileManager.default.fileExists(atPath: directory + "-missing"))
        }
    }

    /// A retrain worker writes beside the server that started it, and only while that process
    /// holds the directory.
    @Test func aWorkerOpensOnlyBesideTheProcessHoldingTheLock() throws {
        try withDirectory { directory in
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            #expect(DataDirectoryLock.currentHolder(directory: directory) == nil)
            let nobody = #expect(throws: StorageError.self) { try SQLiteStores(directory: directory, access: .worker(server: getpid())) }
            #expect(nobody?.code == .locked && nobody?.message.contains("not held by process \(getpid())") == true)
            var server: SQLiteStores? = try SQLiteStores(directory: directory)
            #expect(DataDirectoryLock.currentHolder(directory: directory) == getpid())
            let other = #expect(throws: StorageError.self) { try SQLiteStores(directory: directory, access: .worker(server: getpid() + 1)) }
            #expect(other?.code == .locked)
            let worker = try SQLiteStores(directory: directory, access: .worker(server: getpid()))
            _ = try worker.log.append([Observation(model: "m", uid: "u", item: "i", label: 1, time: 1)])
            #expect(try server?.log.observationCount(model: "m") == 1)
            server = nil
            #expect(DataDirectoryLock.currentHolder(directory: directory) == nil, "released with the server's stores")
            #expect(throws: StorageError.self) { try SQLiteStores(directory: directory, access: .worker(server: getpid())) }
        }
    }

    /// A server's snapshot can hold the snapshot database's write lock for seconds; a retrain
    /// worker writing its version beside it waits that out (``SQLiteStores/workerBusySeconds``)
    /// rather than failing the retrain with "database is locked" after the default 10 s.
    @Test func aWorkersWriteWaitsOutTheServersLongWrite() throws {
        try withDirectory { directory in
            let server = try SQLiteStores(directory: directory)
            let worker = try SQLiteStores(directory: directory, access: .worker(server: getpid()))
            let held = DispatchSemaphore(value: 0), hold = SQLiteDatabase.busySeconds + 0.5
            let holder = Thread {
                try? server.snapshots.database.pool.write { db in
                    try db.execute(sql: "DELETE FROM snapshot_kept")  // takes the write lock
                    held.signal()
                    Thread.sleep(forTimeInterval: hold)
                }
            }
            holder.start()
            held.wait()
            let started = Date()
            let row = ItemStateRow(item: "i1", ridge: RidgeState(prior: [1, 2, 0.5], lambda: 1), observations: 0, seq: 1)
            try worker.snapshots.saveItemStates(model: "m", version: 1, rows: [row], keepingPrevious: false)
            #expect(Date().timeIntervalSince(started) > SQLiteDatabase.busySeconds, "it waited for the server's write")
            #expect(try server.snapshots.loadItemStates(model: "m", version: 1, dimension: 3).map(\.item) == ["i1"])
        }
    }
}
