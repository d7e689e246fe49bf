import Dispatch
import Foundation
import Synchronization
import Testing
@testable import OspreyEngine

/// A pool's threads run every item once, several at a time but never more than the pool
/// has threads, and end when idle (so a process's pools leave no threads behind).
struct WorkerPoolTests {
    @Test func everyItemRunsOnceOnAtMostItsThreads() throws {
        let pool = WorkerPool(name: "test-pool", threads: 3, idleTimeout: .milliseconds(100))
        let running = Atomic(0), most = Atomic(0), ran = Mutex<[Int]>([])
        let release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let n = 40
        for i in 0..<n {
            pool.submit {
                let now = running.add(1, ordering: .relaxed).newValue
                _ = most.max(now, ordering: .relaxed)
                if i < 3 { release.wait() }  // the first three block until all are queued
                running.subtract(1, ordering: .relaxed)
                ran.withLock { $0.append(i) }
                done.signal()
            }
        }
        #expect(pool.liveThreads == 3, "a thread per item queued while all were busy, up to the limit")
        let started = ContinuousClock.now + .seconds(10)
        while running.load(ordering: .relaxed) < 3, ContinuousClock.now < started { usleep(1_000) }
        #expect(running.load(ordering: .relaxed) == 3, "the three blocking items run at once")
        for _ in 0..<3 { release.signal() }
        for _ in 0..<n { #expect(done.wait(timeout: .now() + 10) == .success) }
        #expect(ran.withLock { $0.sorted() } == Array(0..<n))
        #expect(most.load(ordering: .relaxed) == 3, "never a fourth at once")

        // Idle threads end; a later item starts one again.
        let deadline = ContinuousClock.now + .seconds(10)
        while pool.liveThreads > 0, ContinuousClock.now < deadline { usleep(10_000) }
        #expect(pool.liveThreads == 0)
        pool.submit { done.signal() }
        #expect(done.wait(timeout: .now() + 10) == .success)
    }

    /// One thread runs a long backlog in the order it was handed over, also while the items
    /// already taken are dropped from the front of the queue.
    @Test func aLongBacklogRunsInOrder() throws {
        let pool = WorkerPool(name: "test-pool", threads: 1)
        let release = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        let ran = Mutex<[Int]>([])
        let n = 5000
        for i in 0..<n {
            pool.submit {
                if i == 0 { release.wait() }
                ran.withLock { $0.append(i) }
                if i % 7 == 0 { usleep(1) }
                if i == n - 1 { done.signal() }
            }
        }
        release.signal()
        #expect(done.wait(timeout: .now() + 30) == .success)
        #expect(ran.withLock { $0 } == Array(0..<n))
    }
}
