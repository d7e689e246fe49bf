import Dispatch
import Foundation
import ServiceLifecycle
import Synchronization

/// A few threads of the process that run work items in the order handed over: the reads of cold
/// users' states ahead of learning them (``UserWeightStore/prefetch(_:)``, ``readAhead``), and the
/// server's whole-catalogue top-k scans, kept off the network event loops. Dispatch's global
/// queues on Linux start about one blocking item per core and add a thread about once a second,
/// so reads queued behind one another there finished after the commit they were meant to overlap
/// (BENCHMARKS.md: here a few more finish in time), and a blocked worker holds one of that
/// queue's few threads. Threads start on demand, up to ``threads``, and end after
/// ``idleTimeout`` without work.
///
/// As a `Service` it stops on graceful shutdown: idle threads end at once, busy ones after their
/// item, and work handed over afterwards runs on the caller's thread.
public final class WorkerPool: Service, Sendable {
    /// The most threads the pool runs at once.
    public let threads: Int
    /// The name its threads carry (shown by `top -H`, `perf` and debuggers).
    public let name: String
    let idleTimeout: DispatchTimeInterval

    private struct State {
        var queue: [@Sendable () -> Void] = []
        var head = 0
        /// Threads running, and of those the ones waiting for work no one has woken yet.
        var live = 0
        var idle = 0
        var stopped = false
    }
    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    /// A pool of up to `threads` threads named `name`; none runs until work is handed over.
    public init(name: String, threads: Int, idleTimeout: DispatchTimeInterval = .seconds(2)) {
        precondition(threads >= 1, "a pool needs a thread")
        self.name = name
        self.threads = threads
        self.idleTimeout = idleTimeout
    }

    /// Runs `work` on one of the pool's threads, after the work handed over before it has
    /// started. O(1).
    public func submit(_ work: @escaping @Sendable () -> Void) {
        enum Action { case wake, spawn, none, inline }
        let action = state.withLock { s -> Action in
            if s.stopped { return .inline }
            s.queue.append(work)
            if s.idle > 0 {
                s.idle -= 1
                return .wake
            }
            if s.live < threads {
                s.live += 1
                return .spawn
            }
            return .none  // a running thread takes it when it finishes its item
        }
        switch action {
        case .wake: wake.signal()
        case .spawn:
            Thread { [self] in
                BackgroundThread.nameCurrentThread(name)
                runWorker()
            }.start()
        case .none: break
        case .inline: work()
        }
    }

    /// Waits for the graceful shutdown, then stops the pool.
    public func run() async throws {
        try? await gracefulShutdown()
        stop()
    }

    /// Stops the pool: idle threads end now, busy ones once the queue is empty; later work runs
    /// on the caller's thread. O(threads).
    public func stop() {
        let idle = state.withLock { s -> Int in
            s.stopped = true
            defer { s.idle = 0 }
            return s.idle
        }
        for _ in 0..<idle { wake.signal() }
    }

    /// Threads running now. O(1).
    var liveThreads: Int { state.withLock { $0.live } }

    /// The loop of one thread: take the oldest item, or wait to be woken; end after an idle timeout.
    private func runWorker() {
        while true {
            enum Next { case work(@Sendable () -> Void), wait, exit }
            let next = state.withLock { s -> Next in
                guard s.head < s.queue.count else {
                    if s.stopped {
                        s.live -= 1
                        return .exit
                    }
                    s.idle += 1
                    return .wait
                }
                let w = s.queue[s.head]
                s.head += 1
                if s.head == s.queue.count {
                    s.queue.removeAll(keepingCapacity: true)
                    s.head = 0
                } else if s.head >= 1024, s.head * 2 >= s.queue.count {
                    // Never drained under a steady load: drop the items taken, O(1) amortized.
                    s.queue.removeFirst(s.head)
                    s.head = 0
                }
                return .work(w)
            }
            switch next {
            case .work(let work):
                work()
                continue
            case .exit: return
            case .wait: break
            }
            if wake.wait(timeout: .now() + idleTimeout) == .success { continue }
            // Timed out. Still counted idle: no one will wake this thread, so it may end. Not
            // counted: a submit claimed it, and its wake-up is on the way.
            let ends = state.withLock { s -> Bool in
                guard s.idle > 0 else { return false }
                s.idle -= 1
                s.live -= 1
                return true
            }
            if ends { return }
            wake.wait()
        }
    }
}
