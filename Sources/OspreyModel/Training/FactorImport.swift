import Foundation
import OspreyMath

/// A version made of factors trained elsewhere (a Spark ALSModel, a team's own job): the items'
/// vectors become θ as they are, and every user gets a ridge state under them, so online learning
/// goes on from the imported model as from a trained one.
///
/// - A user with imported weights keeps them exactly: its state is `A = λI + Σ f fᵀ` over its
///   ratings of imported items, with `b = A·w` (``UserStates``), so its first observation moves it
///   from `w` with the confidence its ratings give.
/// - A user without imported weights is fitted to its ratings under the imported items (the user
///   half-step of ALS), as a retrain would.
/// - A rating of an item the import does not hold is left out (the item is not part of θ; a
///   catalogue item is scored from its attributes); a user left without ratings or weights is
///   not stored, and starts from the prior when it comes back.
///
/// Predictions are `w_u · f_i + offset_i`, with each item's offset from the file (0 by default):
/// Spark's ALS has no biases, so its scores are reproduced as they are.
public struct FactorImport: Sendable {
    /// The items' vectors: θ.
    public var items: ImportedFactors
    /// The users' weights, when imported with the items.
    public var users: ImportedFactors?
    /// The penalty of every user's ridge state (and of a new user's).
    public var regularization: Regularization
    /// Threads that compute the users' states.
    public var threads: Int

    public init(items: ImportedFactors, users: ImportedFactors?, regularization: Regularization, threads: Int = 2) {
        self.items = items
        self.users = users
        self.regularization = regularization
        self.threads = threads
    }

    /// What the version's lineage records as its source: the files and what they held.
    public var source: String {
        var s = "import: items \(items.path) (\(items.count) vectors, d=\(items.dimension))"
        if let users { s += ", users \(users.path) (\(users.count) vectors)" }
        return s
    }

    /// Version `number` of `model` from the imported factors, its users fitted to (or, with
    /// imported weights, kept under) `ratings`; `trigger` is recorded in its metadata. Logs what
    /// it did. O(ratings · d² + users · d³).
    /// With neither users' weights nor ratings of imported items, no user is stored: each starts
    /// from the prior (zeros) and learns online (item embeddings made elsewhere, users learned here).
    /// - Throws: ``Trainer/ConfigurationError`` when the users' and items' dimensions differ.
    public func result(model: String, number: Int, parent: Int?, ratings: [Rating], trainedThroughSeq: Int64? = nil,
                       trigger: String = "import", log: (String) -> Void = { _ in }) throws -> Trainer.Result {
        let start = Date()
        if let users, users.dimension != items.dimension {
            throw Trainer.ConfigurationError(description: "the users' vectors have \(users.dimension) factors and the items' \(items.dimension); they must match")
        }
        guard regularization.lambda > 0, regularization.lambda.isFinite else {
            throw Trainer.ConfigurationError(description: "--lambda must be a positive number")
        }
        let features = items.materialized()

        // Users in the order they are first met: in the ratings, then the imported ones.
        var index: [String: Int32] = [:]
        var uids: [String] = []
        var rows: [Int32] = [], columns: [Int32] = [], labels: [Float] = []
        var skipped = 0
        for r in ratings {
            guard let column = features.catalog.row(of: r.item) else { skipped += 1; continue }
            let u: Int32
            if let known = index[r.uid] { u = known } else { u = Int32(uids.count); index[r.uid] = u; uids.append(r.uid) }
            rows.append(u)
            columns.append(Int32(column))
            labels.append(r.label)
        }
        var given: [[Float]?] = []
        if let users {
            for uid in users.ids where index[uid] == nil {
                index[uid] = Int32(uids.count)
                uids.append(uid)
            }
            given = [[Float]?](repeating: nil, count: uids.count)
            for (i, uid) in users.ids.enumerated() { given[Int(index[uid]!)] = users.vector(i) }
        }
        let sparse = SparseRows(rowCount: uids.count, rows: rows, columns: columns, labels: labels)
        let states = UserStates(uids: uids, ratings: sparse, features: features, regularization: regularization,
                                threads: threads, given: given)
        let imported = given.lazy.filter { $0 != nil }.count
        log("importing \(model) v\(number): \(items.count) items, d=\(items.dimension); \(uids.count) users (\(imported) with imported weights, \(uids.count - imported) fitted to their ratings); \(labels.count) ratings of imported items\(skipped > 0 ? ", \(skipped) ratings of other items left out" : "")")
        let rmse = try states.rmse()
        if let rmse { log("imported \(model) v\(number): RMSE on its ratings \(String(format: "%.4f", rmse))") }

        var counts = [Int](repeating: 0, count: uids.count)
        for u in rows { counts[Int(u)] += 1 }
        let rated = counts.filter { $0 > 0 }.sorted()
        let median = rated.isEmpty ? 1 : rated[rated.count / 2]
        let metadata = TrainingMetadata(
            factors: items.dimension, lambda: regularization.lambda, scaledLambda: regularization.scaled, lambdaSelection: "given",
            iterations: 0, seed: 0, trainingRMSE: rmse, validationRMSE: nil, ratings: labels.count,
            durationSeconds: Date().timeIntervalSince(start), trainedThroughSeq: trainedThroughSeq, trigger: trigger, source: source)
        return Trainer.Result(model: model, number: number, createdAt: Date(), features: features,
                              lambda: regularization.newUserPenalty(medianRatings: median), metadata: metadata, parent: parent,
                              users: states)
    }
}
