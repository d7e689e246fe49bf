import Foundation
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// The process's memory as the allocator holds it.
public enum ProcessMemory {
    /// Hands memory freed by a large load (a start, a retrain) back to the system: glibc keeps
    /// freed chunks in its arenas, so without this the resident size stays at the load's peak.
    static func returnFreed() {
        #if canImport(Glibc)
        // malloc_trim is glibc's (malloc.h, not in the Glibc module); RTLD_DEFAULT is a null handle.
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        #endif
    }

    /// The resident set size in bytes (`/proc/self/statm`), or nil where there is none.
    public static func residentBytes() -> Int? {
        guard let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = statm.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        #if canImport(Glibc)
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
        return nil
        #endif
    }

    /// ``returnFreed()``, timed: how long it took and how many resident bytes it handed back
    /// (nil where the resident size cannot be read).
    static func returnFreedMeasured() -> (duration: Duration, returned: Int?) {
        let clock = ContinuousClock(), before = residentBytes(), start = clock.now
        returnFreed()
        let took = clock.now - start
        guard let before, let after = residentBytes() else { return (took, nil) }
        return (took, max(0, before - after))
    }

    /// Hands memory back once `freed()` holds, checking every `interval` on a utility thread for
    /// at most `patience`: a replaced serving state is freed by whoever lets go of it last (a
    /// request or a read ahead still holding it), on that one's thread and after the swap, which
    /// handed back what was free then; glibc returns nothing by itself from the middle of its
    /// arenas (measured in the soak: 1.2 GB resident and free until trimmed). Calls `done` with
    /// the time waited, or nil when it gave up. Returns at once.
    static func returnFreed(when freed: @escaping @Sendable () -> Bool, interval: Duration = .milliseconds(100),
                            patience: Duration = .seconds(600), trim: @escaping @Sendable () -> Void = returnFreed,
                            done: @escaping @Sendable (Duration?) -> Void) {
        let clock = ContinuousClock(), start = clock.now
        let step = DispatchTimeInterval.nanoseconds(Int(interval / .nanoseconds(1)))
        @Sendable func check() {
            if freed() {
                trim()
                done(clock.now - start)
            } else if clock.now - start >= patience {
                done(nil)
            } else {
                DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + step, execute: check)
            }
        }
        DispatchQueue.global(qos: .utility).async(execute: check)
    }
}

/// A reference that does not keep its object alive (a replaced state's, watched until freed).
struct WeakReference<Object: AnyObject & Sendable>: Sendable {
    weak var object: Object?
}
