import ArgumentParser
import Foundation
import OspreyLab
import OspreyModel

/// `osprey simulate`: exploration policies against a synthetic world with known tastes.
struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Run exploration policies through a synthetic bandit world and print their cumulative regret.",
        discussion: """
            Users have true latent tastes and items true latent vectors; the reward of showing an item \
            is its true rating plus noise. Each round a user arrives, N candidates are drawn, each \
            policy shows one, observes the reward and learns it with the server's online ridge update. \
            Every policy sees the same rounds (users, candidates, noise). Regret = the best \
            candidate's expected reward − the shown item's. Policies: greedy, epsilon_greedy(ε), \
            linucb(α), thompson(σ).
            """)

    @Option(help: "Rounds to simulate.") var rounds = 50_000
    @Option(help: "Number of users.") var users = 200
    @Option(help: "Number of items in the catalogue.") var items = 2000
    @Option(help: "Candidates offered per round (N).") var candidates = 20
    @Option(help: "Latent dimension d (features have d + 1 entries with the bias).") var dim = 10
    @Option(help: "Standard deviation of the reward noise.") var noise = 1.0
    @Option(help: "Zipf exponent of user arrivals (0: uniform).") var userZipf = 0.0
    @Option(help: "Item genres K: item vectors cluster around K centres (0: independent vectors).") var clusters = 10
    @Option(help: "Spread of items around their genre centre, 0…1.") var clusterSpread = 0.2
    @Option(help: "Each user's candidates come from a fixed pool of this many items (0: the whole catalogue; default: the same 20 candidates every visit).") var userPool = 20
    @Option(help: "Ridge penalty λ of each user's online regression.") var lambda: Float = 1
    @Option(help: "Random seed of the world, the rounds and the policies' exploration.") var seed: UInt64 = 1
    @Option(help: "Comma-separated policies to compare.")
    var policies = "greedy,epsilon_greedy(0.05),linucb(0.5),linucb(1.0),thompson(0.25),thompson(0.5)"
    @Option(help: "Comma-separated rounds at which cumulative regret is printed (default: about 6 up to --rounds).")
    var checkpoints: String?
    @Option(help: "Write cumulative regret every --series-every rounds as CSV (round,policy,cumulative_regret).")
    var series: String?
    @Option(help: "Rounds between rows of --series.") var seriesEvery = 500
    @Option(help: "Write the world (true model and rounds) as JSON, for bench/baselines/vw_bandit.py.") var exportWorld: String?
    @Option(help: "Write the decisions of --log-policy as JSONL (event_id, uid, items with propensities, candidates, chosen, reward).")
    var logDecisions: String?
    @Option(help: "The logging policy of --log-decisions.") var logPolicy = "epsilon_greedy(0.2)"
    @Option(help: "With --log-decisions: write a model (JSON) for evaluate-policy, learned by the logging policy from another --rounds rounds of the same world.")
    var exportModel: String?

    func validate() throws {
        try Bounds.check("rounds", rounds, Bounds.rounds)
        try Bounds.check("users", users, Bounds.worldSize)
        try Bounds.check("items", items, Bounds.worldSize)
        try Bounds.check("candidates", candidates, 1...items)
        try Bounds.check("dim", dim, Bounds.dimension)
        try Bounds.check("noise", noise, Bounds.noise)
        try Bounds.check("user-zipf", userZipf, Bounds.userZipf)
        try Bounds.check("clusters", clusters, 0...Bounds.worldSize.upperBound)
        try Bounds.check("cluster-spread", clusterSpread, Bounds.share)
        try Bounds.check("user-pool", userPool, 0...items)
        try Bounds.check("series-every", seriesEvery, 1...Int.max)
        try Bounds.checkPositive("lambda", Double(lambda))
        guard min(users, rounds) * (dim + 1) * (dim + 1) <= Bounds.simulatedStates else {
            throw ValidationError("the learner would keep min(--users, --rounds) ridge states of (--dim + 1)² values: at most \(Bounds.simulatedStates) in all")
        }
        if exportModel != nil && logDecisions == nil { throw ValidationError("--export-model needs --log-decisions") }
        _ = try parsePolicies(policies)
        _ = try parsePolicies(logPolicy)
    }

    func run() throws {
        let world: BanditWorld
        do {
            world = try BanditWorld(.init(users: users, items: items, candidates: candidates, dimension: dim, noise: noise,
                                          seed: seed, userZipf: userZipf, clusters: clusters, clusterSpread: clusterSpread, userPool: userPool))
        } catch let e as BanditWorld.ConfigurationError { throw ValidationError(e.description) }
        let roundList = world.rounds(rounds)
        if let exportWorld {
            try BanditModelFile(world: world, rounds: roundList, lambda: lambda).write(to: exportWorld)
            Console.info("wrote the world (\(users) users, \(items) items, \(rounds) rounds) to \(exportWorld)")
        }
        let simulation = BanditSimulation(world: world, rounds: roundList, lambda: lambda)
        let marks = try checkpointList()
        var results: [BanditSimulation.Result] = []
        for (n, policy) in try parsePolicies(policies).enumerated() {
            results.append(simulation.run(policy: policy, seed: seed &+ UInt64(n + 1) &* 0x9E37_79B9).result)
        }
        print("world: \(users) users, \(items) items, \(candidates) candidates per round, d=\(dim), noise σ=\(noise), seed \(seed), user arrivals \(userZipf > 0 ? "Zipf \(userZipf)" : "uniform"), \(clusters) genres (spread \(clusterSpread)), candidates from \(userPool > 0 ? "a pool of \(userPool) per user" : "the whole catalogue"), λ=\(lambda)")
        print("cumulative regret (best candidate's expected reward − shown item's, summed):")
        let name = max(8, results.map { $0.policy.description.count }.max() ?? 8)
        print("policy".padding(toLength: name, withPad: " ", startingAt: 0)
              + marks.map { String($0).leftPad(10) }.joined()
              + "  late regret/round  late best shown  explored  missed-unexplored  rating RMSE")
        for r in results {
            print(r.policy.description.padding(toLength: name, withPad: " ", startingAt: 0)
                  + marks.map { String(format: "%.1f", r.cumulativeRegret[$0 - 1]).leftPad(10) }.joined()
                  + String(format: "%19.4f%17.1f%%%9.1f%%%18.1f%%%14.3f", r.lateRegretPerRound, 100 * r.lateBestShare,
                           100 * r.exploredShare, 100 * r.missedUnexplored, r.ratingError))
        }
        print("""
            late: the last 10% of rounds. explored: rounds showing other than the current best score. \
            missed-unexplored: of the rounds that missed the best candidate, the share where the model was less \
            sure of the best candidate (wider sqrt(fᵀA⁻¹f)) than of the shown one. rating RMSE: learned scores vs true ratings over all (user, item) pairs at the end.
            """)
        if let g = results.first(where: { $0.policy == .greedy }),
           let best = results.filter({ $0.policy != .greedy }).min(by: { $0.totalRegret < $1.totalRegret }) {
            print(String(format: """
                greedy's trap: a user's weights learn only along the items shown to them. Greedy shows what it already \
                rates highest, so it never learns it underrates the rest: in %.0f%% of the rounds where it missed the best \
                candidate, it was less sure about that candidate than about the one it showed; its scores end with RMSE %.3f \
                against the true ratings over the whole catalogue (%@: %.3f), and its late regret per round stays at %.3f (%@: %.3f). \
                %@ has %.2f× greedy's cumulative regret.
                """, 100 * g.missedUnexplored, g.ratingError, best.policy.description, best.ratingError,
                g.lateRegretPerRound, best.policy.description, best.lateRegretPerRound,
                best.policy.description, best.totalRegret / max(g.totalRegret, 1e-12)))
        }
        if let series {
            var csv = "round,policy,cumulative_regret\n"
            for r in results {
                for t in Swift.stride(from: seriesEvery, through: rounds, by: seriesEvery) {
                    csv += "\(t),\(r.policy),\(String(format: "%.4f", r.cumulativeRegret[t - 1]))\n"
                }
            }
            do { try csv.write(toFile: series, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(series): \(error.localizedDescription)")
            }
        }
        if let logDecisions {
            let policy = try parsePolicies(logPolicy)[0]
            var lines = ""
            let result = simulation.run(policy: policy, seed: seed &+ 0xD0C) { lines += $0.jsonLine() + "\n" }.result
            do { try lines.write(toFile: logDecisions, atomically: true, encoding: .utf8) } catch {
                throw ValidationError("cannot write \(logDecisions): \(error.localizedDescription)")
            }
            Console.info(String(format: "logged %d decisions of %@ (cumulative regret %.1f) to %@", rounds, policy.description,
                                result.totalRegret, logDecisions))
            if let exportModel {
                // Learned from rounds the log does not contain: a model learned from the log itself
                // would favour the items whose logged noise was lucky, biasing every estimate upwards.
                let other = Array(world.rounds(2 * rounds)[rounds...])
                let learned = BanditSimulation(world: world, rounds: other, lambda: lambda).run(policy: policy, seed: seed &+ 0xD0D).users
                try BanditModelFile(world: world, learned: learned, lambda: lambda).write(to: exportModel)
                Console.info("wrote the model \(policy) learned from another \(rounds) rounds of the world to \(exportModel)")
            }
        }
    }

    func checkpointList() throws -> [Int] {
        if let checkpoints {
            let marks = checkpoints.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !marks.isEmpty, marks.allSatisfy({ (1...rounds).contains($0) }) else {
                throw ValidationError("--checkpoints must be comma-separated rounds between 1 and --rounds")
            }
            return marks
        }
        let base = [1000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000]
        return base.filter { $0 < rounds } + [rounds]
    }
}

/// Splits `a,b(1,2),c` at the commas outside parentheses and parses each policy.
func parsePolicies(_ text: String) throws -> [ExplorationPolicy] {
    var parts: [String] = [], current = "", depth = 0
    for ch in text {
        if ch == "(" { depth += 1 } else if ch == ")" { depth -= 1 }
        if ch == ",", depth == 0 { parts.append(current); current = "" } else { current.append(ch) }
    }
    parts.append(current)
    let policies = try parts.filter { !$0.allSatisfy(\.isWhitespace) }.map { p in
        do { return try ExplorationPolicy.parse(p) } catch let e as ExplorationPolicy.ParseError { throw ValidationError(e.description) }
    }
    guard !policies.isEmpty else { throw ValidationError("name at least one policy") }
    return policies
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? " " + self : String(repeating: " ", count: width - count) + self }
}
