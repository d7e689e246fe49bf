import ArgumentParser
import Foundation
import OspreyModel

/// `osprey evaluate`: the Velox §4.2 online-versus-offline experiment on a ratings file.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Compare held-out RMSE of the initial model, online updates, and a full retrain (Velox §4.2).",
        discussion: """
            Each user's ratings are split by time: the first half trains the initial model, the next \
            70% of the rest are streamed as observations, the last 30% are held out.
            """)

    @Option(help: "Ratings file (MovieLens u.data, ratings.dat, or CSV with a header).") var ratings: String
    @Option(help: "Latent factors d.") var dim = 20
    @Option(help: "Ridge penalty λ; default: chosen by validation.") var lambda: Float?
    @Flag(help: "With --lambda: scale each user's and item's penalty by its number of ratings.") var scaleLambda = false
    @Option(help: "ALS iterations.") var iterations = 10
    @Option(help: "Random seed.") var seed: UInt64 = 1

    func run() throws {
        if scaleLambda && lambda == nil { throw ValidationError("--scale-lambda needs --lambda") }
        let read: [Rating]
        do {
            read = try RatingsReader(progress: Console.fileProgress("reading \(ratings)")).read(path: ratings).ratings
        } catch let e as RatingsFileError {
            throw ValidationError(e.description)
        }
        let experiment = OnlineOfflineExperiment(
            configuration: .init(factors: dim, lambda: lambda, scaleLambda: scaleLambda, iterations: iterations, seed: seed)
        ) { Console.info($0) }
        let r: OnlineOfflineExperiment.Result
        do { r = try experiment.run(ratings: read) } catch let e as Trainer.ConfigurationError {
            throw ValidationError(e.description)
        }
        func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * (r.initialRMSE - x) / r.initialRMSE) }
        print("held-out ratings scored: \(r.heldOutRatings) (skipped \(r.heldOutSkipped) of items unknown to the initial model)")
        print(String(format: "initial model        RMSE %.4f", r.initialRMSE))
        print(String(format: "after online updates RMSE %.4f  (%@ better than initial)", r.onlineRMSE, pct(r.onlineRMSE)))
        print(String(format: "full retrain         RMSE %.4f  (%@ better than initial)", r.retrainRMSE, pct(r.retrainRMSE)))
        print(String(format: "online updates recover %.0f%% of the full retrain's gain", 100 * r.recovered))
    }
}
