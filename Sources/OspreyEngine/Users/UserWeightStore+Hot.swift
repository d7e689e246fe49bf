import OspreyMath

extension UserWeightStore {
    /// `state` as a hot user's, packed into a state ``recycler`` keeps when it keeps one (then
    /// counted in ``UserMetrics``'s `recycled` if its storage was reused, not copied). O(d²).
    func makeHot(_ state: RidgeState, referenced: Bool) -> Hot {
        if var spare = recycler.take(dimension: state.dimension) {
            let storage = spare.storageAddress
            if spare.repack(state) {
                if spare.storageAddress == storage {
                    recycler.countReuse()
                    metrics.recycled.increment()
                }
                return Hot(packed: spare, referenced: referenced)
            }
        }
        return Hot(state, referenced: referenced)
    }

    /// A hot user's ridge state, compact (``CompactRidgeState``). The small fields live in the
    /// cold tier's arrays.
    struct Hot {
        var ridge: CompactRidgeState
        /// Learned since the CLOCK hand last passed (second chance).
        var referenced: Bool

        init(_ ridge: RidgeState, referenced: Bool) {
            self.ridge = CompactRidgeState(ridge)
            self.referenced = referenced
        }

        init(packed: PackedRidgeState, referenced: Bool) {
            self.ridge = .packed(packed)
            self.referenced = referenced
        }

        var unpacked: RidgeState { ridge.unpacked }

        /// Keeps `state` as this user's ridge state (``CompactRidgeState/store(_:)``). O(d²).
        mutating func store(_ state: RidgeState) { ridge.store(state) }
    }
}
