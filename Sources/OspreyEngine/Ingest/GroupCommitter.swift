import CoreMetrics
import Dispatch
import OspreyModel
import Synchronization

/// Group commit (docs/architecture.md, "The path of one observation"): concurrent writers share one durable commit. The first writer
/// to arrive starts a flush on a dedicated queue (off the Swift concurrency pool, since a commit
/// blocks on fsync); everyone who arrives while that commit runs is taken by the next one. Each
/// caller resumes only after its observations are durable *and* learned, so a prediction made
/// after an acknowledged observe reflects it.
final class GroupCommitter: Sendable {
    struct Request {
        var observations: [Observation]
        /// Called once the batch holding these observations is durable and learned, with which
        /// of them were already logged under their observation id (so not logged again), or
        /// with the error that failed the commit.
        var done: @Sendable (Result<[Bool], any Error>) -> Void
    }

    struct State {
        var pending: [Request] = []
        var flushing = false
        var closed = false
    }

    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "osprey.group-commit", qos: .userInitiated)
    private let commit: @Sendable ([Observation]) throws -> [Int64?]
    private let apply: @Sendable ([LoggedObservation]) -> Void
    /// Commits made, and how long each commit and each learning step took.
    private let metrics: IngestMetrics

    /// - Parameters:
    ///   - metrics: records each commit and each learning step.
    ///   - commit: appends a batch to the log durably, returning sequence numbers.
    ///   - apply: learns a committed batch, in sequence order.
    init(metrics: IngestMetrics, commit: @escaping @Sendable ([Observation]) throws -> [Int64?],
         apply: @escaping @Sendable ([LoggedObservation]) -> Void) {
        self.metrics = metrics
        self.commit = commit
        self.apply = apply
    }

    /// Calls `done` once `observations` are durable in the log and learned (with, for each, whether
    /// it was already logged under its observation id: acknowledged, not logged again), or with
    /// the log's error when the commit failed, or ``OspreyError`` `unavailable` after ``close()``.
    /// `done` runs on the commit queue (or at once, on the caller's thread, after ``close()``),
    /// so it must be quick.
    func submit(_ observations: [Observation], done: @escaping @Sendable (Result<[Bool], any Error>) -> Void) {
        let action = state.withLock { s -> Int in
            if s.closed { return 0 }
            s.pending.append(Request(observations: observations, done: done))
            if s.flushing { return 1 }
            s.flushing = true
            return 2
        }
        switch action {
        case 0: done(.failure(OspreyError(.unavailable, "the server is shutting down; retry against a running server")))
        case 2: queue.async { self.flush() }
        default: break
        }
    }

    /// Commits and applies batches until no writer is waiting.
    private func flush() {
        while true {
            let batch = state.withLock { s -> [Request] in
                let b = s.pending
                s.pending = []
                if b.isEmpty { s.flushing = false }
                return b
            }
            if batch.isEmpty { return }
            let observations = batch.flatMap(\.observations)
            do {
                let began = DispatchTime.now().uptimeNanoseconds
                let seqs = try commit(observations)
                let committed = DispatchTime.now().uptimeNanoseconds
                metrics.commits.increment()
                metrics.commitDuration.recordNanoseconds(Int64(committed - began))
                apply(zip(seqs, observations).compactMap { seq, o in seq.map { LoggedObservation(seq: $0, observation: o) } })
                metrics.learnDuration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - committed))
                var start = 0
                for r in batch {
                    let end = start + r.observations.count
                    r.done(.success(seqs[start..<end].map { $0 == nil }))
                    start = end
                }
            } catch {
                for r in batch { r.done(.failure(error)) }
            }
        }
    }

    /// Refuses new writers; those already queued are still committed.
    func close() {
        state.withLock { $0.closed = true }
    }

    /// Observations waiting for the next commit. O(waiting requests).
    var waiting: Int { state.withLock { $0.pending.reduce(0) { $0 + $1.observations.count } } }

    /// Whether a commit is running or queued. O(1).
    var isCommitting: Bool { state.withLock { $0.flushing } }

    /// Waits until no commit is running or queued. O(queued).
    func drain() async {
        while isCommitting {
            try? await Task.sleep(for: .milliseconds(1))
        }
    }
}
