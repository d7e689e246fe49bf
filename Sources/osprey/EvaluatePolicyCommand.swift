import ArgumentParser
import Foundation
import OspreyEngine
import OspreyMath
import OspreyModel
import OspreyStorage

/// `osprey evaluate-policy`: off-policy evaluation of a target policy from logged decisions.
struct EvaluatePolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate-policy",
        abstract: "Estimate from logged decisions the reward another policy or model would have earned (IPS, SNIPS, DR).",
        discussion: """
            With --data-dir and --name it reads a server's own decision log and the feedback joined \
            to it by event_id, and runs the target on the model's serving version (or --version) with \
            its stored user weights (the last snapshot; the server's POST .../evaluate-policy uses the \
            live ones). Otherwise the log is a JSONL file, one decision per line: {"event_id","uid","policy","items":[{"item","score",\
            "propensity"}],"candidates":[...],"chosen","reward"} (`osprey simulate --log-decisions` writes \
            it). The target policy runs on the model of --model (a JSON model file: `osprey simulate \
            --export-model` or `--export-world`), choosing one item among each decision's candidates. \
            Prints IPS, self-normalized IPS, doubly robust and direct-method estimates of its mean reward \
            per decision with 95% normal-approximation intervals (and bootstrap percentile intervals with \
            --bootstrap); with --world, also the true value on the logged contexts.
            """)

    @Option(help: "Logged decisions (JSONL).") var log: String?
    @Option(help: "The target's model (JSON model file).") var model: String?
    @Option(help: "A server's data directory: evaluate on its decision log (with --name).") var dataDir: String?
    @Option(help: "The model in --data-dir.") var name: String?
    @Option(help: "With --data-dir: run the target on this version (default: the serving one).") var version: Int?
    @Option(help: "With --data-dir: evaluate the latest this-many decisions.") var limit = 100_000
    @Option(help: "The target policy: greedy, epsilon_greedy(ε), linucb(α) or thompson(σ).") var target = "greedy"
    @Option(help: "A world file (osprey simulate --export-world) to print the target's true value.") var world: String?
    @Option(help: "Bootstrap resamples for percentile intervals (0: off).") var bootstrap = 0
    @Option(help: "Posterior draws behind a Thompson target's action probabilities.") var samples = ExplorationSelector.defaultPropensitySamples
    @Option(help: "Random seed (Thompson draws, bootstrap).") var seed: UInt64 = 1

    func validate() throws {
        _ = try parsePolicies(target)
        switch (log, model, dataDir, name) {
        case (_?, _?, nil, nil), (nil, nil, _?, _?): break
        default: throw ValidationError("give either --log and --model (files) or --data-dir and --name (a server's store)")
        }
        try Bounds.check("limit", limit, 1...Int.max)
        try Bounds.check("bootstrap", bootstrap, Bounds.bootstrap)
        try Bounds.check("samples", samples, 1...Bounds.posteriorSamples.upperBound)
        if let version { try Bounds.check("version", version, 1...Int.max) }
    }

    func run() throws {
        guard let log, let model else { return try runOnStore(dataDir: dataDir!, name: name!) }
        let text: String
        do { text = try String(contentsOfFile: log, encoding: .utf8) } catch {
            throw ValidationError("cannot read \(log): \(error.localizedDescription)")
        }
        let decisions: [LoggedDecision]
        do { decisions = try LoggedDecision.readJSONL(text) } catch let e as LoggedDecision.ReadError {
            throw ValidationError("\(log) \(e)")
        }
        let file = try BanditModelFile.read(model)
        let features = try file.materialized()
        let states: [String: RidgeState]
        do { states = try file.ridgeStates() } catch { throw ValidationError("the model's ridge statistics are not usable: \(error)") }
        var expected: ((String, Int) -> Double)?
        if let world {
            let truth = try BanditModelFile.read(world)
            guard truth.items == file.items else { throw ValidationError("--world and --model have different catalogues") }
            let truthFeatures = try truth.materialized()
            var weights: [String: [Float]] = [:]
            for (u, uid) in truth.users.enumerated() {
                if let w = truth.weights[u] { weights[uid] = w + [Float](repeating: 0, count: truthFeatures.stride - w.count) }
            }
            expected = { uid, row in
                guard let w = weights[uid] else { return .nan }
                return Double(w.withUnsafeBufferPointer { truthFeatures.score(weights: $0.baseAddress!, item: row) })
            }
        }
        let policy = try parsePolicies(target)[0]
        let data = OffPolicyEvaluation.samples(
            decisions: decisions, features: features, target: ExplorationSelector(policy: policy, propensitySamples: samples),
            targetStates: states, lambda: file.lambda, seed: seed, expectedReward: expected)
        let s = data.samples
        guard s.count > 1 else { throw ValidationError("fewer than 2 usable decisions in \(log) (skipped \(data.skipped.total))") }
        let logging = s.reduce(0) { $0 + $1.reward } / Double(s.count)
        let weights = s.map(\.weight)
        let ess = pow(weights.reduce(0, +), 2) / weights.reduce(0) { $0 + $1 * $1 }
        print("decisions: \(s.count) used, \(data.skipped.total) skipped (no feedback \(data.skipped.noFeedback), no propensity \(data.skipped.noPropensity), unknown item \(data.skipped.unknownItem), no candidates \(data.skipped.noCandidates))")
        print(String(format: "logging policy's mean reward: %.4f; target %@; effective sample size %.0f", logging, policy.description, ess))
        print("estimator     value      95% CI (normal)         std. error" + (bootstrap > 0 ? "   95% CI (bootstrap, \(bootstrap))" : ""))
        let estimators: [([OffPolicySample]) -> OffPolicyEstimate] = [
            { OffPolicyEvaluation.ips($0) }, { OffPolicyEvaluation.selfNormalizedIPS($0) },
            { OffPolicyEvaluation.doublyRobust($0) }, { OffPolicyEvaluation.directMethod($0) },
        ]
        for estimator in estimators {
            let e = estimator(s)
            var line = String(format: "%-8@ %9.4f   [%8.4f, %8.4f]   %10.4f", e.estimator, e.value, e.lower, e.upper, e.standardError)
            if bootstrap > 0 {
                let b = OffPolicyEvaluation.bootstrap(s, estimator: estimator, resamples: bootstrap, seed: seed)
                line += String(format: "   [%8.4f, %8.4f]", b.lower, b.upper)
            }
            print(line)
        }
        if let t = data.trueValue {
            print(String(format: "true value on these contexts (from --world): %.4f", t))
        }
    }

    /// Evaluates on a server's decision log and stored weights.
    func runOnStore(dataDir: String, name: String) throws {
        guard SQLiteStores.exists(in: dataDir) else { throw ValidationError("no Osprey store in \(dataDir)") }
        let store = try SQLiteStores(directory: dataDir, access: .readOnly)
        guard let record = try store.versions.models().first(where: { $0.name == name }) else {
            throw ValidationError("model `\(name)` is not in \(dataDir)")
        }
        let number = version ?? record.servingVersion
        let v: ModelVersion
        do { v = try store.versions.loadVersion(model: name, number: number) } catch { throw ValidationError("\(error)") }
        let records = try store.decisions.decisions(model: name, limit: limit)
        let feedback = try store.log.feedback(model: name)
        Console.info("read \(records.count) decisions and \(feedback.count) joined rewards of \(name); target \(target) on v\(number)")
        let policy = try parsePolicies(target)[0]
        let e = PolicyEvaluation.evaluate(records, feedback: feedback, policy: policy, version: v,
                                          states: { uid in (try? store.snapshots.loadUserState(model: name, version: number, uid: uid, dimension: v.dimension))??.weights.ridge },
                                          propensitySamples: samples, seed: seed)
        let k = e.skipped
        print("decisions: \(e.used) used, \(k.total) skipped (no feedback \(k.noFeedback), no propensity \(k.noPropensity), unknown item \(k.unknownItem), no candidates \(k.noCandidates))")
        guard e.used > 1, let logged = e.loggedReward else {
            throw ValidationError("fewer than 2 usable decisions: feedback must name the event_id of a top-k answer with candidates (items given, or an exploring policy)")
        }
        print(String(format: "logging policy's mean reward: %.4f; target %@ on v%d; effective sample size %.0f",
                     logged, policy.description, number, e.effectiveSampleSize ?? 0))
        print("estimator     value      95% CI (normal)         std. error")
        for x in e.estimates {
            print(String(format: "%-8@ %9.4f   [%8.4f, %8.4f]   %10.4f", x.estimator, x.value, x.lower, x.upper, x.standardError))
        }
    }
}
