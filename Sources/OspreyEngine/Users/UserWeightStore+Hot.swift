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

    /// A hot user's ridge state: packed (``PackedRidgeState``, about half the bytes) whenever it
    /// packs exactly, else as is. The small fields live in the cold tier's arrays.
    struct Hot {
        enum Ridge {
            case packed(PackedRidgeState)
            case full(RidgeState)
            /// Only while ``store(_:)`` holds the packed value, so its storage is not shared.
            case moved
        }
        var ridge: Ridge
        /// Learned since the CLOCK hand last passed (second chance).
        var referenced: Bool

        init(_ ridge: RidgeState, referenced: Bool) {
            self.ridge = PackedRidgeState(ridge).map(Ridge.packed) ?? .full(ridge)
            self.referenced = referenced
        }

        init(packed: PackedRidgeState, referenced: Bool) {
            self.ridge = .packed(packed)
            self.referenced = referenced
        }

        var unpacked: RidgeState {
            switch ridge {
            case .packed(let p): p.unpacked()
            case .full(let r): r
            case .moved: preconditionFailure("a hot state read while it is being stored")
            }
        }

        /// Keeps `state` as this user's ridge state: repacked into the existing packed arrays
        /// when it packs (no allocation), else as is. O(d²).
        mutating func store(_ state: RidgeState) {
            if case .packed(var p) = ridge {
                ridge = .moved
                if p.repack(state) {
                    ridge = .packed(p)
                    return
                }
            }
            ridge = PackedRidgeState(state).map(Ridge.packed) ?? .full(state)
        }
    }
}
