import ArgumentParser
import Foundation
import OspreyMath
import OspreyLab
import OspreyModel

/// The JSON file `osprey simulate --export-world` / `--export-model` write and `osprey
/// evaluate-policy` and `bench/baselines/vw_bandit.py` read: a linear model over a catalogue
/// (item features `[q_i; 1]` and offsets `μ + b_i`, per-user weights) and, for a world, the
/// rounds. For a learned model each user also carries the ridge statistics `A` (`gram`,
/// row-major d × d) and `b` (`rhs`), so LinUCB and Thompson targets see its uncertainty.
struct BanditModelFile: Codable {
    struct Rounds: Codable {
        var user: [Int]
        var candidates: [[Int]]
        var noise: [Double]
    }

    var spec: BanditWorld.Configuration?
    var lambda: Float
    var dimension: Int
    var items: [String]
    var features: [[Float]]
    var offsets: [Float]
    var users: [String]
    var weights: [[Float]?]
    var gram: [[Double]?]?
    var rhs: [[Double]?]?
    var rounds: Rounds?

    /// The world's true model, with `rounds` when given.
    init(world: BanditWorld, rounds: [BanditWorld.Round]?, lambda: Float) {
        let f = world.features, d = f.dimension
        spec = world.configuration
        self.lambda = lambda
        dimension = d
        items = f.catalog.ids
        features = (0..<f.catalog.count).map { i in Array(f.table[(i * f.stride)..<(i * f.stride + d)]) }
        offsets = f.offsets
        users = (0..<world.configuration.users).map { "u\($0)" }
        weights = world.trueWeights.map { Array($0[0..<d]) }
        gram = nil
        rhs = nil
        self.rounds = rounds.map { r in
            Rounds(user: r.map(\.user), candidates: r.map(\.candidates), noise: r.map(\.noise))
        }
    }

    /// A learned model: the world's features with each user's learned ridge state (null for
    /// users who never arrived).
    init(world: BanditWorld, learned: [UserWeights?], lambda: Float) {
        self.init(world: world, rounds: nil, lambda: lambda)
        let d = dimension
        weights = learned.map { $0.map { Array($0.ridge.weights[0..<d]) } }
        gram = learned.map { state in
            state.map { $0.ridge.gramMatrix() }
        }
        rhs = learned.map { $0.map(\.ridge.rhs) }
    }

    /// The feature function. O(items · d).
    func materialized() throws -> MaterializedFeatures {
        let s = VectorKernels.paddedStride(dimension)
        guard features.count == items.count, offsets.count == items.count, features.allSatisfy({ $0.count == dimension }) else {
            throw ValidationError("the model file's items, features and offsets do not match its dimension \(dimension)")
        }
        var table = [Float](repeating: 0, count: items.count * s)
        for (i, row) in features.enumerated() { for j in 0..<dimension { table[i * s + j] = row[j] } }
        return MaterializedFeatures(dimension: dimension, ids: items, table: table, offsets: offsets)
    }

    /// Each user's ridge state by uid: from `A` and `b` when the file has them, else the weights
    /// with `A = λI` (no uncertainty learned). O(users · d³).
    func ridgeStates() throws -> [String: RidgeState] {
        var out: [String: RidgeState] = [:]
        for (u, uid) in users.enumerated() {
            guard let w = weights[u] else { continue }
            if let a = gram?[u], let b = rhs?[u] {
                out[uid] = try RidgeState(gram: a, rhs: b)
            } else {
                out[uid] = RidgeState(prior: w, lambda: lambda)
            }
        }
        return out
    }

    static func read(_ path: String) throws -> BanditModelFile {
        do {
            return try JSONDecoder().decode(BanditModelFile.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationError("cannot read the model file \(path): \(error)")
        }
    }

    func write(to path: String) throws {
        do {
            try JSONEncoder().encode(self).write(to: URL(fileURLWithPath: path))
        } catch {
            throw ValidationError("cannot write \(path): \(error.localizedDescription)")
        }
    }
}
