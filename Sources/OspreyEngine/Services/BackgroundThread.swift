import Foundation
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
                Thread.current.name = name  // on Linux, set from the thread itself to reach the OS
                lower()
                continuation.resume(with: Result { try body() })
            }.start()
        }
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
