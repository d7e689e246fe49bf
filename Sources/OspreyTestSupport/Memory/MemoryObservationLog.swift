import OspreyModel
import OspreyStorage
import Synchronization

/// An ``ObservationLog`` in memory, with the SQLite log's ordering: sequence numbers from 1 in
/// append order, never reused. Durable for as long as the object lives, so a test "restarts" by
/// building a new manager on the same stores.
public final class MemoryObservationLog: ObservationLog, Sendable {
    private let entries = Mutex<[LoggedObservation]>([])
    /// The highest sequence number given out (erasures never lower it).
    private let last = Mutex<Int64>(0)
    /// The observation ids logged, per model, with the user and sequence of their observation.
    private let ids = Mutex<[String: [String: (uid: String, seq: Int64)]]>([:])
    /// Each claimed bucket's node (``claimBuckets(_:node:)``).
    private let owners = Mutex<[Int: String]>([:])

    public init() {}

    public func append(_ observations: [Observation]) throws -> [Int64?] {
        ids.withLock { ids in
            last.withLock { last in
                entries.withLock { log in
                    observations.map { o -> Int64? in
                        if let id = o.observationId {
                            guard ids[o.model]?[id] == nil else { return nil }
                            ids[o.model, default: [:]][id] = (o.uid, last + 1)
                        }
                        last += 1
                        var stored = o
                        stored.observationId = nil  // as the SQLite log reads it back
                        log.append(LoggedObservation(seq: last, observation: stored))
                        return last
                    }
                }
            }
        }
    }

    /// Checks the fence and appends under the owners' lock, which a claim takes too: a claim
    /// comes wholly before or after a fenced append.
    public func append(_ observations: [Observation], fence: AppendFence) throws -> [Int64?] {
        try owners.withLock { owners in
            if let lost = fence.buckets.first(where: { owners[$0] != fence.node }) {
                throw StorageError(.conflict, "node \(fence.node) does not hold bucket \(lost) (\(owners[lost] ?? "nobody") does); nothing appended")
            }
            return try append(observations)
        }
    }

    public func claimBuckets(_ buckets: [Int], node: String) throws {
        owners.withLock { owners in for b in buckets { owners[b] = node } }
    }

    /// Every entry, in sequence order (a copy: callers iterate without holding the lock).
    public var all: [LoggedObservation] { entries.withLock { $0 } }

    public func observations(model: String, after seq: Int64, limit: Int) throws -> [LoggedObservation] {
        Array(all.lazy.filter { $0.seq > seq && $0.observation.model == model }.prefix(limit))
    }

    public func forEachObservation(model: String, after seq: Int64, _ body: (LoggedObservation) throws -> Void) throws {
        for logged in all where logged.seq > seq && logged.observation.model == model { try body(logged) }
    }

    public func forEachObservation(model: String, uid: String, in range: Range<Int64>,
                                   _ body: (LoggedObservation) throws -> Void) throws {
        for logged in all where range.contains(logged.seq) && logged.observation.model == model && logged.observation.uid == uid {
            try body(logged)
        }
    }

    public func feedback(model: String) throws -> [String: DecisionFeedback] {
        var out: [String: DecisionFeedback] = [:]
        for logged in all where logged.observation.model == model {
            let o = logged.observation
            if let id = o.eventId, out[id] == nil { out[id] = DecisionFeedback(item: o.item, label: o.label, seq: logged.seq) }
        }
        return out
    }

    public func observationCount(model: String) throws -> Int {
        all.lazy.filter { $0.observation.model == model }.count
    }

    public func lastSequence() throws -> Int64 {
        last.withLock { $0 }
    }

    public func deleteUser(model: String, uid: String, through seq: Int64) throws -> Int {
        // The erased observations' ids go with them, as their rows do in SQLite.
        ids.withLock { ids in ids[model] = ids[model]?.filter { !($0.value.uid == uid && $0.value.seq <= seq) } }
        return entries.withLock { log in
            let before = log.count
            log.removeAll { $0.seq <= seq && $0.observation.model == model && $0.observation.uid == uid }
            return before - log.count
        }
    }
}
