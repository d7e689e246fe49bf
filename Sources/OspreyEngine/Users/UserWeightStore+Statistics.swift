import Synchronization

extension UserWeightStore {
    /// Counters of the tiers, kept across the states of one served model.
    public final class Statistics: Sendable {
        let rebuilds = Atomic<Int>(0)
        let evictions = Atomic<Int>(0)
        let rebuildNanoseconds = Atomic<Int>(0)
        let prefetchedRebuilds = Atomic<Int>(0)
        let warmed = Atomic<Int>(0)
        public init() {}
        /// Cold users whose full state was rebuilt (hot-tier misses).
        public var rebuildCount: Int { rebuilds.load(ordering: .relaxed) }
        /// Of those, the rebuilds whose state had been read ahead (``UserWeightStore/prefetch(_:)``).
        public var prefetchedRebuildCount: Int { prefetchedRebuilds.load(ordering: .relaxed) }
        /// Cold users made hot by a warm start (``UserWeightStore/warm(_:)``), not by learning.
        public var warmedCount: Int { warmed.load(ordering: .relaxed) }
        /// Users whose full state was dropped from the hot tier.
        public var evictionCount: Int { evictions.load(ordering: .relaxed) }
        /// Total time spent rebuilding in the learning step, in seconds (reads ahead not included).
        public var rebuildSeconds: Double { Double(rebuildNanoseconds.load(ordering: .relaxed)) / 1e9 }
    }
}
