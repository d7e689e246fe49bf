import CoreMetrics
import Dispatch
import Foundation
import Logging
import OspreyStorage
import ServiceLifecycle
import Synchronization

/// The decision log (docs/architecture.md, "Exploration and the decision log"): every top-k answer, with each shown item's propensity, kept so
/// that feedback can be joined to it by `event_id` and other policies evaluated off-line.
///
/// Decisions are buffered and written in batches (one transaction per `flushInterval` or per
/// `batchSize` decisions) to their own database file, off the request path: a top-k answer never
/// waits for a disk. A decision is looked up in the buffer first, so feedback can name it the
/// moment its answer is sent. A crash loses at most the last interval's decisions — never an
/// observation — and feedback naming a lost decision is simply not joined.
///
/// As a `Service` it deletes what the retention no longer keeps at start and then every minute,
/// and on graceful shutdown writes what is still buffered.
public final class DecisionLog: Service, Sendable {
    struct State {
        var pending: [DecisionRecord] = []
        var pendingIndex: [String: Int] = [:]
        /// Decisions being written, and where each is among them: still found by ``lookup(_:)``
        /// until their commit returns. (The buffer and its index move here whole; one flush runs
        /// at a time.)
        var writing: [DecisionRecord] = []
        var writingIndex: [String: Int] = [:]
        /// Users allocated in a competition, written with the next batch.
        var assignments: [Assignment] = []
        var scheduled = false
    }

    /// Which decisions the log keeps: feedback can be joined, and policies evaluated, only
    /// against decisions still in it.
    public struct Retention: Sendable, Equatable {
        /// Decisions older than this are deleted (nil: kept regardless of age).
        public var maxAge: Duration?
        /// Beyond this many, the oldest decisions are deleted (nil: no limit).
        public var maxCount: Int?

        /// Seven days and ten million decisions by default (about 2 GB of greedy decisions at
        /// k = 10; exploring ones keep longer lists).
        public init(maxAge: Duration? = .seconds(7 * 24 * 3600), maxCount: Int? = 10_000_000) {
            precondition(maxCount.map { $0 >= 0 } ?? true && maxAge.map { $0 >= .zero } ?? true)
            self.maxAge = maxAge
            self.maxCount = maxCount
        }

        /// Every decision is kept.
        public static let forever = Retention(maxAge: nil, maxCount: nil)
    }

    private let store: any DecisionStore
    private let logger: Logger
    private let state = Mutex(State())
    private let queue = DispatchQueue(label: "osprey.decision-log", qos: .utility)
    private let flushInterval: DispatchTimeInterval
    private let batchSize: Int
    /// Decisions kept in memory at most while writes fail; older ones are dropped (and counted).
    private let maxPending: Int
    /// This process's event-id prefix (random) and counter.
    private let prefix: String
    private let counter = Atomic<UInt64>(0)
    private let retention: Retention
    /// Decisions written, write failures, decisions dropped after failures, decisions deleted by
    /// the retention, and decisions waiting.
    private let metrics: DecisionLogMetrics
    /// Steps of ``pruneInBackground()`` are under way.
    private let pruning = Atomic<Bool>(false)

    init(store: any DecisionStore, logger: Logger, retention: Retention = .init(),
         flushInterval: DispatchTimeInterval = .milliseconds(50), batchSize: Int = 1024, maxPending: Int = 1_000_000,
         metrics: DecisionLogMetrics = .init(factory: NOOPMetricsHandler.instance)) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.retention = retention
        self.flushInterval = flushInterval
        self.batchSize = batchSize
        self.maxPending = maxPending
        let random = UInt64.random(in: 0..<(1 << 48))
        prefix = String(random, radix: 16).leftPadded(to: 12) + "-"
    }

    /// A new event id, unique across processes with overwhelming probability: this process's
    /// random 48-bit prefix and a counter, both as 12 hex digits. Also returns the counter, a
    /// per-request seed. O(1).
    ///
    /// The counter has a fixed width so a process's ids grow in string order too: a decision is
    /// inserted next to the previous one in the log's `event_id` index, and the retention deletes
    /// them (oldest first) from one end of the process's run of ids, instead of all over a
    /// B-tree of hundreds of megabytes (unpadded, "10" sorts before "2").
    func nextEventID() -> (id: String, number: UInt64) {
        let n = counter.add(1, ordering: .relaxed).newValue
        return (prefix + String(n, radix: 16).leftPadded(to: 12), n)
    }

    /// Buffers a decision; it is written within the flush interval. While writes fail, the
    /// buffer holds at most about ``maxPending`` decisions: past that the oldest are dropped
    /// (counted in `osprey_decisions_dropped_total`). O(1) amortized.
    func append(_ decision: DecisionRecord) {
        var dropped = 0
        schedule(state.withLock { s -> Bool? in
            s.pendingIndex[decision.eventId] = s.pending.count
            s.pending.append(decision)
            if s.pending.count > maxPending + overflow { dropped = Self.dropOldest(&s, keeping: maxPending) }
            return Self.due(&s, count: s.pending.count, batchSize: batchSize)
        })
        if dropped > 0 { metrics.dropped.increment(by: dropped) }
    }

    /// Buffers a user's allocation in a competition; written with the next batch. Bounded as
    /// decisions are (a dropped allocation is drawn again after a restart). O(1) amortized.
    func append(_ assignment: Assignment) {
        var dropped = 0
        schedule(state.withLock { s -> Bool? in
            s.assignments.append(assignment)
            if s.assignments.count > maxPending + overflow {
                dropped = s.assignments.count - maxPending
                s.assignments.removeFirst(dropped)
            }
            return Self.due(&s, count: s.assignments.count, batchSize: batchSize)
        })
        if dropped > 0 { metrics.dropped.increment(by: dropped) }
    }

    /// How far the buffer may grow past ``maxPending`` before its oldest are dropped, so the
    /// drop (which re-indexes the buffer) runs once per that many appends.
    private var overflow: Int { max(1, maxPending / 8) }

    /// Drops the oldest pending decisions beyond `keeping` and re-indexes the rest; returns how
    /// many it dropped. O(pending).
    private static func dropOldest(_ s: inout State, keeping: Int) -> Int {
        let dropped = s.pending.count - keeping
        guard dropped > 0 else { return 0 }
        s.pending.removeFirst(dropped)
        s.pendingIndex = Dictionary(uniqueKeysWithValues: s.pending.enumerated().map { ($1.eventId, $0) })
        return dropped
    }

    /// Decisions and allocations held in memory (buffered or being written). O(1).
    var bufferedCount: Int { state.withLock { $0.pending.count + $0.writing.count + $0.assignments.count } }

    /// Whether a flush must start now (true), later (false), or is already on its way (nil).
    private static func due(_ s: inout State, count: Int, batchSize: Int) -> Bool? {
        if s.scheduled { return count == batchSize ? true : nil }
        s.scheduled = true
        return count >= batchSize
    }

    private func schedule(_ flushNow: Bool?) {
        switch flushNow {
        case true?: queue.async { self.flush() }
        case false?: queue.asyncAfter(deadline: .now() + flushInterval) { self.flush() }
        case nil: break
        }
    }

    /// The decision logged under `eventId`: from the buffer, else from the store; nil when none.
    /// - Throws: ``StorageError`` when the store cannot be read.
    func lookup(_ eventId: String) throws -> DecisionRecord? {
        let buffered = state.withLock { s in
            s.pendingIndex[eventId].map { s.pending[$0] } ?? s.writingIndex[eventId].map { s.writing[$0] }
        }
        if let buffered { return buffered }
        return try store.decision(eventId: eventId)
    }

    /// Writes every buffered decision now, on the caller's thread (it blocks on SQLite). On a
    /// failure the decisions go back to the buffer for the next flush.
    func flush() {
        let (batch, assignments) = state.withLock { s -> ([DecisionRecord], [Assignment]) in
            let b = s.pending, a = s.assignments
            s.writing = b
            s.writingIndex = s.pendingIndex
            s.pending = []
            s.pendingIndex = [:]
            s.assignments = []
            s.scheduled = false
            return (b, a)
        }
        guard !batch.isEmpty || !assignments.isEmpty else { return }
        metrics.pending.set(batch.count)
        do {
            let trimmed = try store.appendDecisions(batch, trimBefore: oldestKept(now: Date()), trimKeep: retention.maxCount)
            metrics.pruned.increment(by: trimmed)
            try store.appendAssignments(assignments)
            metrics.written.increment(by: batch.count)
            metrics.pending.set(0)
            _ = state.withLock { s in Self.endWrite(&s) }
        } catch {
            metrics.failures.increment()
            logger.error("decision log write failed; will retry", metadata: ["decisions": "\(batch.count)", "error": "\(error)"])
            let reschedule = state.withLock { s -> Bool in
                _ = Self.endWrite(&s)
                s.assignments = assignments + s.assignments
                s.pending = batch + s.pending
                metrics.dropped.increment(by: Self.dropOldest(&s, keeping: maxPending))
                s.pendingIndex = Dictionary(uniqueKeysWithValues: s.pending.enumerated().map { ($1.eventId, $0) })
                if s.assignments.count > maxPending {
                    metrics.dropped.increment(by: s.assignments.count - maxPending)
                    s.assignments.removeFirst(s.assignments.count - maxPending)
                }
                metrics.pending.set(s.pending.count)
                defer { s.scheduled = true }
                return !s.scheduled
            }
            if reschedule { queue.asyncAfter(deadline: .now() + .seconds(1)) { self.flush() } }
        }
    }

    /// Ends a write: its decisions are no longer looked up among those being written. Returns
    /// what was held for the lookups, so the caller frees it after the lock, not under it.
    private static func endWrite(_ s: inout State) -> ([DecisionRecord], [String: Int]) {
        defer {
            s.writing = []
            s.writingIndex = [:]
        }
        return (s.writing, s.writingIndex)
    }

    /// The time before which the retention keeps no decision (seconds since 1970), if it has an
    /// age limit.
    private func oldestKept(now: Date) -> Double? {
        retention.maxAge.map { age in
            now.timeIntervalSince1970 - Double(age.components.seconds) - Double(age.components.attoseconds) * 1e-18
        }
    }

    /// Deletes the decisions the retention no longer keeps, on the caller's thread (it blocks on
    /// SQLite), `batch` per transaction and at most `maxBatches` transactions; returns how many.
    /// A failure is logged and retried at the next call. O(deleted).
    @discardableResult
    func prune(now: Date = Date(), batch: Int = 10_000, maxBatches: Int = .max) -> Int {
        guard retention != .forever else { return 0 }
        do {
            let n = try store.pruneDecisions(before: oldestKept(now: now), keep: retention.maxCount, batch: batch, maxBatches: maxBatches)
            metrics.pruned.increment(by: n)
            return n
        } catch {
            logger.error("decision log pruning failed; will retry", metadata: ["error": "\(error)"])
            return 0
        }
    }

    /// Decisions deleted per step of ``pruneInBackground()``, and the pause between steps: at
    /// most 20,000 a second. Each flush also deletes what the retention no longer keeps, up to
    /// twice what it writes, so under load the log stays within its limits without these steps;
    /// they clear a backlog (left by an earlier process, or when no decisions are written) gently.
    /// Deleting 300,000 at once, 10,000 per transaction, doubled durable observe's p99 for the
    /// first seconds of a start (BENCHMARKS.md).
    static let pruneStep = 1_000, prunePause = DispatchTimeInterval.milliseconds(50)

    /// Deletes what the retention no longer keeps on the log's queue, one step at a time with a
    /// pause between them (flushes go in between); does not wait. A call while an earlier one's
    /// steps are still going does nothing.
    func pruneInBackground() {
        guard !pruning.exchange(true, ordering: .acquiringAndReleasing) else { return }
        queue.async { self.pruneSteps(deleted: 0) }
    }

    private func pruneSteps(deleted: Int) {
        let n = prune(batch: Self.pruneStep, maxBatches: 1)
        if n == Self.pruneStep {
            queue.asyncAfter(deadline: .now() + Self.prunePause) { self.pruneSteps(deleted: deleted + n) }
            return
        }
        if deleted + n > 0 { logger.info("old decisions deleted", metadata: ["decisions": "\(deleted + n)"]) }
        pruning.store(false, ordering: .releasing)
    }

    /// Prunes at start and every minute; on graceful shutdown, flushes the buffer.
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                self.pruneInBackground()
                try? await Task.sleep(for: .seconds(60))
            }
        }
        await flushed()
    }

    /// Erases user `uid`'s decisions and allocations of `model`: those buffered, then the
    /// store's, on the log's queue, so no write of them is under way meanwhile and none is left
    /// to come. Returns how many, buffered ones included. O(buffered + the store's erasure).
    /// - Throws: what the store's erasure throws; the buffered ones are gone already.
    func erase(model: String, uid: String) throws -> Int {
        try queue.sync {
            let dropped = state.withLock { s -> Int in
                let before = s.pending.count + s.assignments.count
                s.pending.removeAll { $0.model == model && $0.uid == uid }
                s.pendingIndex = Dictionary(uniqueKeysWithValues: s.pending.enumerated().map { ($1.eventId, $0) })
                s.assignments.removeAll { $0.model == model && $0.uid == uid }
                return before - s.pending.count - s.assignments.count
            }
            return try dropped + store.deleteUser(model: model, uid: uid)
        }
    }

    /// ``flush()`` on the log's queue, awaited: every decision buffered before the call is
    /// written (or back in the buffer after a failure) when it returns.
    func flushed() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            queue.async {
                self.flush()
                c.resume()
            }
        }
    }
}

extension String {
    func leftPadded(to n: Int) -> String {
        count >= n ? self : String(repeating: "0", count: n - count) + self
    }
}
