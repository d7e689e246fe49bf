import Foundation
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Synchronization
import Testing

/// The PostgreSQL log under concurrent appenders: sequence numbers follow commit order, so a
/// reader that follows the log by "everything after the last number I saw" misses nothing.
@Suite(.enabled(if: PostgresTestServer.unavailable == nil, "no PostgreSQL server"))
struct PostgresObservationLogTests {
    /// A bucket's new owner claims it only after a fenced append of its previous holder that is
    /// in progress has committed: the new owner then reads that append in the log.
    @Test func aClaimWaitsForTheFencedAppendInProgress() throws {
        let url = try PostgresTestServer.freshDatabase()
        let database = try PostgresDatabase(url: url, maxConnections: 4)
        let log = try PostgresObservationLog(database: database)
        try log.claimBuckets([7, 8], node: "a")
        let locked = DispatchSemaphore(value: 0), committed = Atomic(false)
        let clock = ContinuousClock(), start = clock.now
        DispatchQueue.global().async {
            // The fence's hold, as append(_:fence:) takes it, kept for half a second before its commit.
            _ = try? database.transaction { s in
                _ = try s.query("SELECT bucket FROM cluster_bucket WHERE bucket = 7 AND node = 'a' FOR SHARE")
                locked.signal()
                Thread.sleep(forTimeInterval: 0.5)
                committed.store(true, ordering: .sequentiallyConsistent)
            }
        }
        locked.wait()
        try log.claimBuckets([7], node: "b")
        #expect(committed.load(ordering: .sequentiallyConsistent) && clock.now - start >= .milliseconds(450),
                "the claim waited for the append's transaction")
        let o = Observation(model: "m", uid: "u", item: "i", label: 1, time: 0)
        #expect(throws: StorageError.self) { _ = try log.append([o], fence: AppendFence(node: "a", buckets: [7])) }
        #expect(try log.append([o], fence: AppendFence(node: "a", buckets: [8])) == [1], "a keeps the bucket it holds")
    }

    @Test func aReaderFollowingTheLogMissesNoConcurrentAppend() throws {
        let url = try PostgresTestServer.freshDatabase()
        let writerLog = try PostgresObservationLog(database: try PostgresDatabase(url: url, maxConnections: 4))
        let readerLog = try PostgresObservationLog(database: try PostgresDatabase(url: url, maxConnections: 1))
        let writers = 4, batches = 60, size = 5
        let finished = Atomic(0), failures = Mutex<[String]>([])
        let done = DispatchGroup()
        for w in 0..<writers {
            done.enter()
            Thread.detachNewThread {
                defer { finished.add(1, ordering: .releasing); done.leave() }
                for b in 0..<batches {
                    let batch = (0..<size).map { i in
                        Observation(model: "m", uid: "w\(w)", item: "b\(b)-\(i)", label: 1, time: 1, observationId: "w\(w)-\(b)-\(i)")
                    }
                    do {
                        let seqs = try writerLog.append(batch)
                        if seqs.contains(where: { $0 == nil }) { failures.withLock { $0.append("batch \(w)/\(b) skipped") } }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        // Follow the log while the writers append; then read once more after they finished.
        var seen: [Int64] = [], items: [String] = []
        var last: Int64 = 0
        while true {
            let writersDone = finished.load(ordering: .acquiring) == writers
            let page = try readerLog.observations(model: "m", after: last, limit: 50)
            for logged in page {
                seen.append(logged.seq)
                items.append(logged.observation.uid + "/" + logged.observation.item)
            }
            last = page.last?.seq ?? last
            if writersDone && page.isEmpty { break }
            if page.count < 50 { Thread.sleep(forTimeInterval: 0.001) }  // leave the cores to the writers
        }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(seen == seen.sorted() && Set(seen).count == seen.count)
        #expect(seen.count == writers * batches * size, "the follower saw \(seen.count) of \(writers * batches * size)")
        #expect(Set(items).count == writers * batches * size)
        #expect(try readerLog.lastSequence() == seen.last)
    }
}
