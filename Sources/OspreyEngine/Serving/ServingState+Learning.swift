import OspreyModel
import OspreyStorage
import Synchronization

/// How a serving state learns the log (docs/architecture.md, "Online learning (Velox eq. 2)"):
/// one observation at a time in log order, live and on replay alike, and a catch-up's bounded
/// replay.
extension ServingState {
    /// Learns one logged observation (live and on replay alike, in log order): a user never seen
    /// starts from the version's prior (bootstrapping, Velox §5); a cold user is first rebuilt
    /// from stored state (see ``UserWeightStore``); an item the version does not know is counted
    /// but cannot move the weights; an observation in the validation sample is scored into the
    /// monitor's validation loss and counted, never learned. Returns true when this observation
    /// made the version stale. An observation answering an exploratory choice is also scored into
    /// the monitor's exploration pool. O(d²), plus a rebuild for a cold user.
    /// - Throws: when a cold user's stored state cannot be read; the user is then unchanged (the
    ///   log still holds the observation: the next rebuild of the user replays it).
    @discardableResult
    func learn(_ logged: LoggedObservation) throws -> Bool {
        guard let outcome = try learnUser(logged) else { return false }
        return record(outcome, answersExploration: logged.observation.answersExploration)
    }

    /// What an observation taught a user (``apply(_:to:features:items:validation:recorded:recording:)``'s outcome),
    /// for the monitor.
    typealias Outcome = (loss: Double, heldOut: Bool)

    /// ``learn(_:)`` without the monitor: the user's side only. Returns the outcome to record
    /// (nil: none).
    private func learnUser(_ logged: LoggedObservation) throws -> Outcome? {
        let o = logged.observation
        let v = version
        // A cluster node learns only users it holds: adopted when the observation was accepted,
        // unless dropped since with a bucket the node lost (its new owner learns it; drops and
        // learning take turns under the learning lock). And an adopted user's state already
        // holds what its adoption read of the log.
        if adopter != nil {
            guard let through = users.adoptedThrough(o.uid) else { return nil }
            if logged.seq <= through { return nil }
        }
        // Recorded before the user's epoch moves (the update counts the observation): an answer
        // computed at the new epoch, and cached under it, excludes the item.
        observed.insert(uid: o.uid, item: o.item)
        let entry = users.recent.record(logged)
        let features = self.features, items = itemLearner
        // With item updates, what the update reads of its item is recorded with it, so that a
        // user the catch-up demotes is rebuilt with the same updates.
        let recording = items == nil ? nil : entry.map { (users.recent, $0) }
        return try users.update(o.uid, before: logged.seq, create: { .bootstrapped(from: v) }) { w in
            Self.apply(logged, to: &w, features: features, items: items.map { ($0, true) }, validation: validation,
                       recording: recording)
        }
    }

    /// Records an observation's outcome in the monitor. Returns true when it made the version stale.
    private func record(_ outcome: Outcome, answersExploration: Bool) -> Bool {
        monitor.withLock { m in
            if outcome.heldOut {
                m.recordValidation(outcome.loss)
                return false
            }
            let stale = m.record(outcome.loss)
            return answersExploration ? m.recordExploration(outcome.loss) || stale : stale
        }
    }

    /// Applies one logged observation to a user's state: counted only for an item neither the
    /// version nor the catalogue knows, scored for the validation sample, learned otherwise (a
    /// catalogue item with its vector computed from its attributes as they are now). With item
    /// updates (`items`), the item's live row is used, and first, when `learning` the items too,
    /// the item learns the observation with the user's weights as they are before it (an item
    /// unknown until then joins the catalogue, ``ItemCatalogue/addObserved(_:)``). Returns
    /// its squared prequential error and whether it was held out (nil for an unknown item).
    /// With item updates, what the update read of the item is attached to `recording`'s entry,
    /// and a `recorded` input (a rebuild's, ``RecentObservations``) is learned instead of the
    /// item's row as it is now. O(d²).
    static func apply(_ logged: LoggedObservation, to w: inout UserWeights, features: ServingFeatures,
                      items: (learner: ItemLearner, learning: Bool)? = nil,
                      validation: QualityMonitor.Configuration, recorded: RecentObservations.ItemInput? = nil,
                      recording: (window: RecentObservations, entry: Int32)? = nil) -> (loss: Double, heldOut: Bool)? {
        let o = logged.observation
        let heldOut = validation.holdsOut(seq: logged.seq)
        if let input = recorded {
            return input.features.withUnsafeBufferPointer { f in
                let target = o.label - input.offset
                if heldOut { return (w.countHeldOut(features: f.baseAddress!, target: target), true) }
                return (w.learn(features: f.baseAddress!, target: target, scored: input.scored), false)
            }
        }
        func read(_ f: UnsafePointer<Float>, _ offset: Float, scored: Double) {
            guard let (window, entry) = recording else { return }
            window.attach(features: UnsafeBufferPointer(start: f, count: features.stride), offset: offset, scored: scored, to: entry)
        }
        var known = features.row(of: o.item)
        if known == nil, let items, items.learning, !heldOut {
            // Learned by its item, an item unknown until now joins the catalogue.
            features.catalogue.addObserved(o.item)
            known = features.row(of: o.item)
        }
        guard let row = known else {
            w.countWithoutLearning()
            return nil
        }
        func learn(_ f: UnsafePointer<Float>, _ offset: Float) -> (loss: Double, heldOut: Bool) {
            if heldOut { return (w.countHeldOut(features: f, target: o.label - offset), true) }
            return (w.learn(features: f, target: o.label - offset), false)
        }
        guard let items else { return features.withFeatures(item: row, learn) }
        guard items.learning, !heldOut else {
            return items.learner.withRow(row, features: features) { f, offset in
                read(f, offset, scored: 0)
                return learn(f, offset)
            }
        }
        // Scored before the item learns: the prequential error must not know the label.
        let scored = items.learner.withRow(row, features: features) { f, offset in
            let error = Double(o.label - offset - w.ridge.predict(f))
            return error * error
        }
        w.ridge.weights.withUnsafeBufferPointer { user in
            items.learner.learn(row: row, userWeights: user.baseAddress!, label: o.label, seq: logged.seq, features: features)
        }
        return items.learner.withRow(row, features: features) { f, offset in
            read(f, offset, scored: scored)
            return (w.learn(features: f, target: o.label - offset, scored: scored), false)
        }
    }

    /// Learns the model's logged observations with sequence in (`after`, `through`], skipping
    /// what `snapshot` says a user's stored state already reflects, then publishes the item rows
    /// they moved (a state that starts or catches up serves its rows as learned, not as of its
    /// next publication). Returns the last sequence seen.
    ///
    /// `bounded` (a state catching up before it serves, see ``UserWeightStore/demote(toAtMost:)``)
    /// keeps at most about twice its `hotUsers` hot at any time, and that many at the end.
    /// Without item updates users learn independently of one another, so the log is learned in
    /// spans of `span` observations, user by user: each user's observations in log order, the
    /// monitor's outcomes in log order after each span; the states are those of learning in log
    /// order, while a demoted user is rebuilt once a span instead of once for each of its
    /// observations. With item updates the log is learned in log order, and a demoted user's
    /// rebuild learns what its updates read of their items as they ran (``RecentObservations``).
    @discardableResult
    func replay(log: any ObservationLog, after: Int64, through: Int64 = .max, skipping snapshot: UserSnapshot? = nil,
                bounded bound: CatchUpBound? = nil) throws -> Int64 {
        defer { publishItems() }
        var last = after, span: [LoggedObservation] = []
        defer { if let bound { users.demote(toAtMost: bound.hotUsers) } }
        // Pages of the log, so no read stays open while a cold user's rebuild reads the store.
        pages: while last < through {
            let page = try log.observations(model: version.model, after: last, limit: 10_000)
            for logged in page {
                guard logged.seq <= through else { break pages }
                last = logged.seq
                if let snapshot, snapshot.reflects(uid: logged.observation.uid, seq: logged.seq) { continue }
                guard let bound else {
                    try learn(logged)
                    continue
                }
                if itemLearner != nil {
                    // Users and items learn from one another: in log order, one at a time.
                    try learn(logged)
                    if users.hotCount > 2 * bound.hotUsers { users.demote(toAtMost: bound.hotUsers) }
                    continue
                }
                span.append(logged)
                if span.count == bound.span {
                    try learnByUser(span, holdingAtMost: bound.hotUsers)
                    span.removeAll(keepingCapacity: true)
                }
            }
            if page.count < 10_000 { break }
        }
        if let bound, !span.isEmpty { try learnByUser(span, holdingAtMost: bound.hotUsers) }
        return last
    }

    /// How a state catching up before it serves bounds its hot users: at most `hotUsers` (twice
    /// that between passes), learning the log user by user `span` observations at a time
    /// (``Manager/Configuration/catchUpHotUsers``, ``Manager/Configuration/catchUpSpan``).
    struct CatchUpBound {
        var hotUsers: Int
        var span: Int
    }

    /// Learns `span` (in log order) user by user, demoting users whenever more than twice
    /// `bound` are hot, then records the outcomes in the monitor in log order.
    private func learnByUser(_ span: [LoggedObservation], holdingAtMost bound: Int) throws {
        // Each user's observations (their indices in `span`), users in order of first appearance.
        var groupOf: [String: Int] = [:], groups: [[Int]] = []
        for (i, logged) in span.enumerated() {
            if let g = groupOf[logged.observation.uid] {
                groups[g].append(i)
            } else {
                groupOf[logged.observation.uid] = groups.count
                groups.append([i])
            }
        }
        var outcomes: [(index: Int, outcome: Outcome)] = []
        outcomes.reserveCapacity(span.count)
        for group in groups {
            for i in group {
                if let outcome = try learnUser(span[i]) { outcomes.append((i, outcome)) }
            }
            if users.hotCount > 2 * bound { users.demote(toAtMost: bound) }
        }
        outcomes.sort { $0.index < $1.index }
        for (i, outcome) in outcomes { _ = record(outcome, answersExploration: span[i].observation.answersExploration) }
    }
}

extension UserWeights {
    /// A user never seen, as version `v` starts it: its prior, the mean of all users' weights
    /// (bootstrapping, Velox §5). O(d²).
    static func bootstrapped(from v: ModelVersion) -> UserWeights {
        UserWeights(ridge: .init(prior: v.prior, lambda: v.lambda), bootstrapped: true)
    }
}
