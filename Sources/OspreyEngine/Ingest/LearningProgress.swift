import Synchronization

/// How far learning has come, shared by the roles that must agree on it: the ingestor learns
/// under ``applied``'s lock; the snapshotter cuts each chunk under it, so a row's state and
/// sequence agree; the installer swaps versions under it, so no observation is learned twice or
/// skipped across a swap (docs/architecture.md, "Threads and locks").
final class LearningProgress: Sendable {
    /// The highest log sequence learned, and the learning lock.
    let applied: Mutex<Int64>
    /// Observations learned since the process started (the snapshot policy counts from it).
    let learned = Atomic<Int>(0)
    /// Held by a snapshot from capturing users' states (or taking observed items) until it has
    /// written them, and by a user's erasure for its whole run, so that no snapshot captured
    /// before an erasure writes the user back after it. Taken before ``applied``, never under it.
    let snapshotWrites = Mutex<Void>(())

    init(applied: Int64) {
        self.applied = Mutex(applied)
    }

    /// The highest log sequence learned now. O(1), takes the lock.
    var sequence: Int64 { applied.withLock { $0 } }
}
