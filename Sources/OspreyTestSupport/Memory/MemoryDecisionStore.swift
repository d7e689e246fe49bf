import OspreyStorage
import Synchronization

/// A ``DecisionStore`` in memory, with the SQLite decision log's rules: append order, repeated
/// event ids ignored, only the oldest pruned, counts kept across pruning.
public final class MemoryDecisionStore: DecisionStore, Sendable {
    private struct State {
        var log: [DecisionRecord] = []
        var ids: Set<String> = []
        var counts: [String: Int] = [:]
        var assignments: [String: [Double: [String: Int]]] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    @discardableResult
    public func appendDecisions(_ decisions: [DecisionRecord], trimBefore: Double?, trimKeep: Int?) throws -> Int {
        state.withLock { s in
            for d in decisions where s.ids.insert(d.eventId).inserted {
                s.log.append(d)
                s.counts[d.model, default: 0] += 1
            }
            guard trimBefore != nil || trimKeep != nil else { return 0 }
            return Self.prune(&s, before: trimBefore, keep: trimKeep, limit: 2 * decisions.count)
        }
    }

    public func pruneDecisions(before: Double?, keep: Int?, batch: Int, maxBatches: Int) throws -> Int {
        precondition(batch > 0 && (keep ?? 0) >= 0 && maxBatches > 0, "prune batch and batches must be positive, keep non-negative")
        return state.withLock { s in Self.prune(&s, before: before, keep: keep, limit: batch.multipliedReportingOverflow(by: maxBatches).overflow ? .max : batch * maxBatches) }
    }

    private static func prune(_ s: inout State, before: Double?, keep: Int?, limit: Int) -> Int {
        var cut = 0
        if let keep { cut = max(0, s.log.count - keep) }
        if let before { while cut < s.log.count && s.log[cut].time < before { cut += 1 } }
        cut = min(cut, limit)
        for d in s.log.prefix(cut) { s.ids.remove(d.eventId) }
        s.log.removeFirst(cut)
        return cut
    }

    public func decision(eventId: String) throws -> DecisionRecord? {
        state.withLock { s in s.log.first { $0.eventId == eventId } }
    }

    public func decisions(model: String, limit: Int) throws -> [DecisionRecord] {
        state.withLock { s in Array(s.log.filter { $0.model == model }.suffix(limit)) }
    }

    public func decisionCount(model: String) throws -> Int {
        state.withLock { $0.counts[model] ?? 0 }
    }

    public func decisionVersions(model: String, since: Double) throws -> [String: Int] {
        state.withLock { s in
            var out: [String: Int] = [:]
            for d in s.log where d.model == model && d.time >= since { out[d.eventId] = d.version }
            return out
        }
    }

    public func appendAssignments(_ assignments: [Assignment]) throws {
        state.withLock { s in
            for a in assignments where s.assignments[a.model]?[a.since]?[a.uid] == nil {
                s.assignments[a.model, default: [:]][a.since, default: [:]][a.uid] = a.version
            }
        }
    }

    public func deleteUser(model: String, uid: String) throws -> Int {
        state.withLock { s in
            let before = s.log.count
            for d in s.log where d.model == model && d.uid == uid { s.ids.remove(d.eventId) }
            s.log.removeAll { $0.model == model && $0.uid == uid }
            var erased = before - s.log.count
            for since in (s.assignments[model] ?? [:]).keys where s.assignments[model]?[since]?.removeValue(forKey: uid) != nil {
                erased += 1
            }
            return erased
        }
    }

    public func assignments(model: String, since: Double) throws -> [String: Int] {
        state.withLock { $0.assignments[model]?[since] ?? [:] }
    }
}
