import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Background work on a thread of its own at a lower scheduling priority, so that on a busy
/// machine the threads answering requests (the network event loops, the group commit) run
/// first. Linux keeps a nice value per thread; a fresh thread is used because an unprivileged
/// process cannot raise a thread's priority back, so a pooled thread would stay lowered.
enum BackgroundThread {
    /// How many nice levels (of 40) background threads are lowered: a snapshot lowered by 10
    /// while a durable-observe load ran cut observe's p99 from 6.8 to 6.1 ms (medians of 10 and
    /// 16 periods) and took ~1.5× as long (BENCHMARKS.md).
    static let nice: Int32 = 10

    /// Runs `body` on a new thread named `name`, ``nice`` levels below the caller, and returns its
    /// result.
    static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                nameCurrentThread(name)
                lower()
                continuation.resume(with: Result { try body() })
            }.start()
        }
    }

    /// Runs `body` on a background thread named `name` every `interval` until the task is
    /// cancelled: at a fixed rate, not an interval after each run ends, so a slow run does not
    /// push the next one later (runs do not overlap; one that overran starts the next at once).
    static func every(_ interval: Duration, name: String, _ body: @escaping @Sendable () -> Void) async {
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isCancelled {
            next = max(next + interval, clock.now)
            try? await Task.sleep(until: next, clock: clock)
            if Task.isCancelled { break }
            _ = try? await run(name: name, body)
        }
    }

    /// Runs `body(0)`, …, `body(count - 1)`, each on a new thread named `name`, ``nice`` levels
    /// below the caller, and waits for all of them; returns their results in that order. For
    /// callers that are already off the Swift concurrency pool (a retrain, a rollback).
    /// Nothing `body` captured is held once it returns, though a thread may still be exiting (a
    /// state freed right after, a replaced store at an install, is freed then, not later).
    static func runEach<T: Sendable>(name: String, count: Int, _ body: @escaping @Sendable (Int) -> T) -> [T] {
        let results = Mutex<[Int: T]>([:])
        let work = Mutex<(@Sendable (Int) -> T)?>(body)
        let done = DispatchGroup()
        for i in 0..<count {
            done.enter()
            Thread {
                nameCurrentThread(name)
                lower()
                let result = { work.withLock { $0 }!(i) }()
                results.withLock { $0[i] = result }
                done.leave()
            }.start()
        }
        done.wait()
        work.withLock { $0 = nil }
        return results.withLock { all in (0..<count).map { all[$0]! } }
    }

    /// Names the calling thread for the OS (`top -H`, `perf`, debuggers show it): at most 15
    /// bytes on Linux, the rest cut off. Set through `pthread_self()`, not `Thread.current.name`,
    /// whose Linux implementation can reach another thread's handle while a new thread starts.
    static func nameCurrentThread(_ name: String) {
        #if os(Linux)
        // glibc's, declared only under _GNU_SOURCE, so not in the Glibc module.
        typealias SetName = @convention(c) (pthread_t, UnsafePointer<CChar>) -> Int32
        guard let symbol = dlsym(nil, "pthread_setname_np") else { return }
        _ = unsafeBitCast(symbol, to: SetName.self)(pthread_self(), String(decoding: name.utf8.prefix(15), as: UTF8.self))
        #else
        Thread.current.name = name
        #endif
    }

    /// The calling thread's name as the OS has it.
    static func currentThreadName() -> String {
        #if os(Linux)
        typealias GetName = @convention(c) (pthread_t, UnsafeMutablePointer<CChar>, Int) -> Int32
        guard let symbol = dlsym(nil, "pthread_getname_np") else { return "" }
        var buffer = [CChar](repeating: 0, count: 32)
        _ = unsafeBitCast(symbol, to: GetName.self)(pthread_self(), &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #else
        return Thread.current.name ?? ""
        #endif
    }

    /// The calling thread's nice value (nil where threads have none of their own).
    static func currentNice() -> Int32? {
        #if os(Linux)
        errno = 0
        let value = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        return errno == 0 ? value : nil
        #else
        return nil
        #endif
    }

    /// Lowers the calling thread's priority by ``nice`` (at most to 19, the lowest).
    private static func lower() {
        #if os(Linux)
        // `who` 0 is the calling thread on Linux. Failing to lower it only costs latency.
        guard let current = currentNice() else { return }
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, min(19, current + nice))
        #endif
    }
}
