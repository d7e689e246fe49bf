#if canImport(Glibc)
import Glibc
#endif

/// The process's memory as the allocator holds it.
enum ProcessMemory {
    /// Hands memory freed by a large load (a start, a retrain) back to the system: glibc keeps
    /// freed chunks in its arenas, so without this the resident size stays at the load's peak.
    static func returnFreed() {
        #if canImport(Glibc)
        // malloc_trim is glibc's (malloc.h, not in the Glibc module); RTLD_DEFAULT is a null handle.
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        #endif
    }
}
