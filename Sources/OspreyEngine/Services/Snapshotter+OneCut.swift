import OspreyStorage

/// The snapshot of a state that learns items (docs/architecture.md, "Snapshots at one cut"):
/// its users and items saved as of one cut, those learned since the cut written first.
extension Snapshotter {
    /// With item updates, a state's users and items are saved as of one cut: a user's update
    /// reads its item's row and an item's update reads its user's weights, so a restart replays
    /// exactly only from states that all reflect the same sequence. Under the learning lock the
    /// cut takes the sequence learned, the changed users and items and the items users observed,
    /// in O(stripes): their collections are shared, not read (``UserWeightStore/ChangedAtCut``;
    /// a state shares its storage until it is next learned, then is copied). The rows are then
    /// written in chunks: the users and items learned since the cut first (each holds two copies
    /// in memory until written: ``UserWeightStore/takeLearnedSinceCut()``,
    /// ``ItemLearner/takeLearnedSinceCut()``), then the other items, then the other users, each
    /// chunk keeping the rows it overwrites
    /// (``SnapshotStore/saveSnapshot(model:version:rows:observedItems:keepingPrevious:)``),
    /// until the snapshot's sequence advances and drops them. A snapshot cut short is put back
    /// at the next start (``SnapshotStore/restoreInterruptedSnapshot(model:version:)``).
    /// `snapshotWrites` is held throughout, so an erasure waits for the whole snapshot.
    /// Returns the users saved; nil when the state stopped learning meanwhile (swapped out): the
    /// snapshot lets it go at its next chunk, and the version's kept copies are put back when it
    /// is next loaded. Also nil, with `deferred` set, when `yieldingToInstalls` and a version
    /// began to be installed in its place (``ServedModel/replacing(when:_:)``): it stops at its next
    /// chunk, as a failed one would, what it did not write marked changed again for the next.
    /// O(changed users · d² + changed items · d²).
    func snapshotAtOneCut(_ state: ServingState, items: ItemLearner, of model: ServedModel, yieldingToInstalls: Bool,
                          deferred: inout Bool) throws -> Int? {
        let version = state.version.number
        return try progress.snapshotWrites.withLock { _ -> Int? in
            let clock = ContinuousClock(), locked = clock.now
            // Under the learning lock only the cut is taken, O(stripes); the states it shares are
            // listed after it, and the cut dropped at once (until then, a state learned is copied).
            let cut: Int64, unlearned: Int64?, paused: Duration
            var users: [(uid: String, state: UserWeightStore.Captured)], changedItems: [(row: Int, item: ItemLearner.Item)]
            var observed: [ObservedItem]
            do {
                let (seq, earliest, usersCut, itemsCut, observedCut) = progress.applied.withLock { seq in
                    (seq, state.users.earliestUnlearned, state.users.takeChangedAtCut(states: true), items.takeChangedAtCut(),
                     state.observed.takeAllAtCut())
                }
                (cut, unlearned, paused) = (seq, earliest, clock.now - locked)
                (users, changedItems, observed) = (usersCut.captured(), itemsCut.items, observedCut.items)
            }
            defer {
                state.users.endCut()
                items.endCut()
            }
            logger.info("snapshot cut", metadata: [
                "model.name": "\(model.name)", "model.version": "\(version)", "users": "\(users.count)",
                "items": "\(changedItems.count)", "learning.paused": "\(paused)",
            ])
            let features = state.features, saved = users.count, itemRows = changedItems.map(\.row)
            do {
                do {
                    try stores.snapshots.saveObservedItems(model: model.name, observed)
                    state.observed.finishSaving(observed)
                } catch {
                    state.observed.putBack(observed)
                    throw error
                }
                observed = []
                // Each chunk's states are let go once written (from the end, and no slice outlives
                // its statement, so nothing is copied): a user or an item learned since the cut
                // holds a second copy of its state until then. So those go first, as learning
                // names them (moved to the end); then the items, since a catalogue is small beside
                // its users and nearly every item of it learns while they are written; then the rest.
                var userPosition = Dictionary(users.enumerated().map { ($1.uid, $0) }, uniquingKeysWith: { a, _ in a })
                var itemPosition = Dictionary(changedItems.enumerated().map { ($1.row, $0) }, uniquingKeysWith: { a, _ in a })
                var learnedUsers = 0, learnedItems = 0, chunks = 0
                while !users.isEmpty || !changedItems.isEmpty {
                    guard Self.learns(state, in: model) else {
                        logSwappedOut(state, of: model, saved: saved - users.count, of: saved)
                        return nil
                    }
                    if yieldingToInstalls && model.current === state && model.isBeingReplaced {
                        state.users.markChanged(users.map(\.uid))
                        items.markChanged(itemRows)
                        deferred = true
                        logger.info("snapshot stopped: a new version is being installed", metadata: [
                            "model.name": "\(model.name)", "model.version": "\(version)",
                            "users.saved": "\(saved - users.count)", "users.changed": "\(saved)",
                        ])
                        return nil
                    }
                    if chunks % Self.learnedFirstEvery == 0 {
                        learnedUsers = Self.moveToEnd(state.users.takeLearnedSinceCut(), of: &users, key: \.uid,
                                                      positions: &userPosition, moved: learnedUsers)
                        learnedItems = Self.moveToEnd(items.takeLearnedSinceCut(), of: &changedItems, key: \.row,
                                                      positions: &itemPosition, moved: learnedItems)
                    }
                    chunks += 1
                    if learnedUsers > 0 || changedItems.isEmpty {
                        let start = users.count - min(Self.snapshotChunk, users.count)
                        let rows = users[start...].map { SnapshotRow(uid: $0.uid, weights: $0.state.weights, seq: cut) }
                        try stores.snapshots.saveSnapshot(model: model.name, version: version, rows: rows, observedItems: [],
                                                          keepingPrevious: true)
                        state.users.finishSnapshot(rows.map(\.uid))
                        users.removeLast(users.count - start)
                        learnedUsers = max(0, learnedUsers - rows.count)
                    } else {
                        let start = changedItems.count - min(Self.snapshotChunk, changedItems.count)
                        let rows = changedItems[start...].map {
                            ItemStateRow(item: features.id(of: $0.row), ridge: $0.item.ridge, observations: $0.item.observations, seq: cut)
                        }
                        try stores.snapshots.saveItemStates(model: model.name, version: version, rows: rows, keepingPrevious: true)
                        changedItems.removeLast(changedItems.count - start)
                        learnedItems = max(0, learnedItems - rows.count)
                    }
                }
                try stores.snapshots.advanceSnapshot(model: model.name, version: version, to: min(cut, (unlearned ?? .max) - 1))
                // The states just written are the store's now: beyond the hot items, they go cold.
                let wentCold = items.evictClean()
                if model.current === state { model.metrics.record(items: items) }
                if wentCold > 0 {
                    let (hot, cold) = items.counts
                    logger.debug("items went cold", metadata: [
                        "model.name": "\(model.name)", "model.version": "\(version)", "items": "\(wentCold)",
                        "items.hot": "\(hot)", "items.cold": "\(cold)",
                    ])
                }
            } catch {
                state.users.markChanged(users.map(\.uid))
                items.markChanged(itemRows)
                throw error
            }
            return saved
        }
    }

    /// Moves the entries of `list` named in `learned` (by `key`; some maybe named twice, written
    /// or moved already) to its end, just below the `moved` entries moved there before and not
    /// yet written, keeping `positions` (each entry's index; written entries' are past the end).
    /// Returns how many entries at the end are moved ones now. O(learned).
    private static func moveToEnd<Entry, Key: Hashable>(_ learned: [Key], of list: inout [Entry], key: KeyPath<Entry, Key>,
                                                        positions: inout [Key: Int], moved: Int) -> Int {
        var moved = min(moved, list.count)
        for k in learned {
            let end = list.count - 1 - moved
            guard let i = positions[k], i <= end else { continue }  // written, or moved already
            if i < end {
                list.swapAt(i, end)
                (positions[list[i][keyPath: key]], positions[list[end][keyPath: key]]) = (i, end)
            }
            moved += 1
        }
        return moved
    }
}
