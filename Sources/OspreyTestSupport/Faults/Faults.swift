import Foundation
import OspreyStorage
import Synchronization

/// Which storage calls fail, for failure tests: wrap stores with ``Stores/injectingFaults(_:)``
/// and tell this object to fail the Nth call of a kind, or every call until healed. A failed call
/// throws ``StorageError`` `.io` before it reaches the wrapped store, so it changes nothing there,
/// as a failed commit changes nothing.
public final class Faults: Sendable {
    /// The kinds of storage call that can be made to fail.
    public enum Operation: String, Sendable, CaseIterable {
        /// ``ObservationLog/append(_:)`` (a group commit) and
        /// ``ObservationLog/deleteUser(model:uid:through:)``: a write of the log.
        case commit
        /// Any read of the observation log.
        case logRead
        /// A write of the catalogue (a version, serving, a competition, a policy, an erasure, items).
        case versionWrite
        /// A read of the catalogue.
        case versionRead
        /// A write of the snapshot store (user rows, item states, observed items, hot users, a
        /// restore of kept copies, an erasure).
        case snapshotWrite
        /// A read of the snapshot store (a start's load, a cold user's rebuild, item states).
        case snapshotRead
        /// A write of the decision log (decisions, assignments, pruning, an erasure).
        case decisionWrite
        /// A read of the decision log.
        case decisionRead
    }

    private struct Rule {
        var calls = 0
        /// Calls (counted from 1) that fail.
        var failing: Set<Int> = []
        var always = false
    }

    private let rules = Mutex<[Operation: Rule]>([:])
    /// Operations whose calls wait (``hold(_:)``).
    private let held = Mutex<Set<Operation>>([])

    public init() {}

    /// Makes calls of `operation` wait, once counted, until ``release(_:)``: a test can then line
    /// work up behind a call under way (observes behind a slow commit).
    public func hold(_ operation: Operation) {
        _ = held.withLock { $0.insert(operation) }
    }

    /// Lets the calls of `operation` that wait, and later ones, go on.
    public func release(_ operation: Operation) {
        _ = held.withLock { $0.remove(operation) }
    }

    /// Makes the `n`th call of `operation` from now fail (1: the next one).
    public func failNext(_ operation: Operation, nth n: Int = 1) {
        precondition(n >= 1, "n counts calls from 1")
        rules.withLock { r in
            var rule = r[operation] ?? Rule()
            rule.failing.insert(rule.calls + n)
            r[operation] = rule
        }
    }

    /// Makes every call of `operation` fail until ``heal(_:)``.
    public func failAll(_ operation: Operation) {
        rules.withLock { $0[operation, default: Rule()].always = true }
    }

    /// Lets calls of `operation` through again (pending Nth-call failures are dropped too).
    public func heal(_ operation: Operation) {
        rules.withLock { r in
            r[operation]?.always = false
            r[operation]?.failing = []
        }
    }

    /// Calls of `operation` so far, failed ones included.
    public func calls(_ operation: Operation) -> Int {
        rules.withLock { $0[operation]?.calls ?? 0 }
    }

    /// Counts a call of `operation`; runs `body` unless the call is to fail, then throws.
    func run<T>(_ operation: Operation, _ body: () throws -> T) throws -> T {
        try check(operation)
        return try body()
    }

    /// Counts a call of `operation` and throws when it is to fail.
    func check(_ operation: Operation) throws {
        let fail = rules.withLock { r -> Bool in
            var rule = r[operation] ?? Rule()
            rule.calls += 1
            let fail = rule.always || rule.failing.remove(rule.calls) != nil
            r[operation] = rule
            return fail
        }
        while held.withLock({ $0.contains(operation) }) { usleep(500) }
        if fail { throw StorageError(.io, "injected fault: \(operation.rawValue) failed") }
    }
}

extension Stores {
    /// These stores behind fault-injecting wrappers that `faults` controls.
    public func injectingFaults(_ faults: Faults) -> Stores {
        Stores(log: FaultInjectingObservationLog(log, faults), versions: FaultInjectingVersionStore(versions, faults),
               snapshots: FaultInjectingSnapshotStore(snapshots, faults), decisions: FaultInjectingDecisionStore(decisions, faults))
    }
}
