import Foundation
import Logging
import OspreyEngine
import OspreyMath
import OspreyModel
import OspreyStorage

/// Tiered user state at scale: builds a synthetic store of many users without ALS (random item
/// factors; each user's state from a few synthetic ratings, written through the store API in
/// batches), and measures an in-process start and the cost of rebuilding cold users.
/// `bench/tiers.sh` drives it and measures `osprey serve` on the same stores.
enum TierBench {
    static let model = "bench"

    /// Writes model `bench` (d, `items` items) with `users` users (`u0`…) into `directory`.
    /// O(users · ratings · d²) time; the snapshot database holds ~19 KB per user at d = 50.
    /// With `legacyFormat`, states are stored as "RDG2" (19 KB at d = 50) in the first schema's
    /// `user_state` table, as a release from before tiering reads them (the baseline); else as
    /// "RDG3" in `user_ridge` with their compact rows.
    static func build(directory: String, users: Int, items: Int = 10_000, d: Int = 50, ratingsPerUser: Int = 5,
                      seed: UInt64 = 1, legacyFormat: Bool = false) throws {
        let store = try SQLiteStores(directory: directory)
        var rng = SplitMix64(seed: seed)
        let stride = VectorKernels.paddedStride(d)
        var table = [Float](repeating: 0, count: items * stride)
        let scale = 1 / Float(d).squareRoot()
        for i in 0..<items {
            for k in 0..<d { table[i * stride + k] = Float(rng.nextGaussian()) * scale }
        }
        let features = MaterializedFeatures(
            dimension: d, ids: (0..<items).map { "i\($0)" }, table: table,
            offsets: (0..<items).map { _ in Float(3.5 + 0.3 * rng.nextGaussian()) })
        let prior = [Float](repeating: 0, count: d)
        let metadata = TrainingMetadata(
            factors: d, lambda: 1, scaledLambda: false, lambdaSelection: "fixed (synthetic benchmark store)", iterations: 0,
            seed: seed, trainingRMSE: 0, validationRMSE: nil, ratings: users * ratingsPerUser, durationSeconds: 0)
        let version = ModelVersion(model: model, number: 1, createdAt: Date(), features: features, lambda: 1, prior: prior,
                                   metadata: metadata, parent: nil)
        // The synthetic ratings are the version's training ratings too (what `exclude_observed`
        // leaves out, and what a release before tiering reads at start for it).
        var ratings: [Rating] = []
        ratings.reserveCapacity(users * ratingsPerUser)
        for u in 0..<users {
            for _ in 0..<ratingsPerUser {
                ratings.append(Rating(uid: "u\(u)", item: "i\(rng.next() % UInt64(items))",
                                      label: Float(1 + 4 * rng.nextUniform()), timestamp: 0))
            }
        }
        let clock = ContinuousClock(), start = clock.now
        try store.stores.createVersion(version, users: [], reflecting: 0, trainingRatings: ratings, serve: true)
        progress("stored \(ratings.count) training ratings (\(clock.now - start))")
        let batch = 10_000
        var done = 0
        while done < users {
            let rows = (done..<min(users, done + batch)).map { u -> SnapshotRow in
                var w = UserWeights(ridge: RidgeState(prior: prior, lambda: 1), bootstrapped: false)
                for r in ratings[(u * ratingsPerUser)..<((u + 1) * ratingsPerUser)] {
                    let item = features.catalog.row(of: r.item)!
                    features.withFeatures(item: item) { f, offset in _ = w.ridge.update(features: f, target: r.label - offset) }
                }
                var row = SnapshotRow(uid: "u\(u)", weights: w, seq: 0)
                if legacyFormat { row.state = w.ridge.serializedUnpacked() }
                return row
            }
            if legacyFormat {
                try store.snapshots.saveLegacySnapshot(model: model, version: 1, rows: rows)
            } else {
                try store.snapshots.saveSnapshot(model: model, version: 1, rows: rows)
            }
            done += rows.count
            if done % 100_000 == 0 || done == users {
                progress("built \(done) of \(users) users (\(clock.now - start))")
            }
        }
    }

    /// Starts a manager on `directory` in-process (tiered with `hotUsers`), reports its start
    /// time and resident memory, then rebuilds `samples` random cold users one at a time (point
    /// read of the snapshot row, deserialize, replay of the user's log after it) and reports the
    /// latency distribution.
    static func measure(directory: String, hotUsers: Int, samples: Int) throws {
        let quiet = Logger(label: "bench", factory: { _ in SwiftLogNoOpLogHandler() })
        let rssBefore = residentMB()
        let clock = ContinuousClock(), t0 = clock.now
        let manager = try Manager(stores: try SQLiteStores(directory: directory).stores, configuration: .init(hotUsers: hotUsers), logger: quiet)
        let startup = clock.now - t0
        let state = try manager.registry.model(model).current
        let users = state.users.count
        emit("- in-process start, `hotUsers` = \(hotUsers == .max ? "all (untiered)" : String(hotUsers)): \(users) users in \(startup), resident \(fixed(residentMB(), 0)) MB (\(fixed(rssBefore, 0)) MB before), hot \(state.users.hotCount)")
        guard samples > 0, hotUsers != .max else { return }
        var rng = SplitMix64(seed: 3)
        var times: [Double] = []
        times.reserveCapacity(samples)
        for _ in 0..<samples {
            let uid = "u\(rng.next() % UInt64(users))"
            let s = clock.now
            let w = try state.users.fullState(uid)
            let elapsed = (clock.now - s).components
            times.append(Double(elapsed.seconds) * 1e6 + Double(elapsed.attoseconds) / 1e12)
            consume(w?.ridge.weights[0] ?? 0)
        }
        // The point read of the full row alone, on another sample of users (a rebuild reads the
        // log only after a failed one).
        let store = try SQLiteStores(directory: directory, access: .readOnly)  // the manager holds the lock
        var reads: [Double] = []
        for _ in 0..<samples {
            let uid = "u\(rng.next() % UInt64(users))"
            let s = clock.now
            _ = try store.snapshots.loadUserState(model: model, version: 1, uid: uid, dimension: state.version.dimension)
            let e = (clock.now - s).components
            reads.append(Double(e.seconds) * 1e6 + Double(e.attoseconds) / 1e12)
        }
        reads.sort()
        func pct(_ v: [Double], _ p: Double) -> Double { v[min(v.count - 1, Int((p * Double(v.count)).rounded(.up)) - 1)] }
        times.sort()
        func pct(_ p: Double) -> Double { pct(times, p) }
        emit("- rebuild of one cold user (`UserWeightStore.fullState`: point read by primary key + deserialize + unpack), \(samples) random users: median \(fixed(pct(0.5), 1)) µs, p90 \(fixed(pct(0.9), 1)) µs, p99 \(fixed(pct(0.99), 1)) µs, max \(fixed(times.last!, 1)) µs")
        emit("  - the store's part, on \(samples) other random users: point read + deserialize (`loadUserState`) median \(fixed(pct(reads, 0.5), 1)) µs, p99 \(fixed(pct(reads, 0.99), 1)) µs")
        var rated: [Double] = []
        for _ in 0..<samples {
            let uid = "u\(rng.next() % UInt64(users))"
            let s = clock.now
            let items = try store.versions.trainingItems(model: model, uid: uid) + store.snapshots.observedItems(model: model, uid: uid)
            let e = (clock.now - s).components
            rated.append(Double(e.seconds) * 1e6 + Double(e.attoseconds) / 1e12)
            consume(Float(items.count))
        }
        rated.sort()
        emit("- `exclude_observed`'s read of one user's rated items (training ratings and the snapshots' `user_item`, two range reads; 5 rows here), \(samples) random users: median \(fixed(pct(rated, 0.5), 1)) µs, p99 \(fixed(pct(rated, 0.99), 1)) µs")
    }

    /// This process's resident set size in MB (MiB; nan where it cannot be read).
    static func residentMB() -> Double {
        ProcessMemory.residentBytes().map { Double($0) / 1_048_576 } ?? .nan
    }
}
