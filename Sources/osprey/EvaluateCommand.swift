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
    @OptionGroup var training: TrainingOptions

    func run() throws {
        let read = try readRatings(ratings).ratings
        let experiment = OnlineOfflineExperiment(configuration: training.configuration) { Console.info($0) }
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
