import ArgumentParser
import Foundation
import OspreyLab
import OspreyModel

/// `osprey evaluate`: the Velox §4.2 online-versus-offline experiment on a ratings file.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Compare held-out RMSE of the initial model, online updates, and a full retrain (Velox §4.2).",
        discussion: """
            Each user's ratings are split by time: the first half trains the initial model, the next \
            70% of the rest are streamed as observations, the last 30% are held out. The stream is \
            learned twice: into the user weights only (as Velox does), and into the user weights and \
            the items' rows (as Oryx's speed layer does).
            """)

    @Option(help: "Ratings file (MovieLens u.data, ratings.dat, or CSV with a header).") var ratings: String
    @OptionGroup var training: TrainingOptions
    @Flag(help: "Fit ALS without user and item bias terms (plain μ + p_u·q_i).") var noBiases = false
    @Option(help: "Item-side updates: which side learns an observation first.")
    var itemOrder: OnlineOfflineExperiment.ItemUpdates.Order = .itemFirst
    @Option(help: "Item-side ridge penalty λ; default: the training λ and its scaling.") var itemLambda: Float?
    @Flag(help: "Item-side updates learn the item factors only, not the item offsets μ + b_i.") var noItemOffsets = false
    @Flag(help: "Item-side updates start from rows re-solved with the final user weights, not the served rows.") var itemResolve = false

    func validate() throws {
        if let itemLambda { try Bounds.checkPositive("item-lambda", Double(itemLambda)) }
    }

    func run() throws {
        let read = try readRatings(ratings).ratings
        var configuration = training.configuration
        configuration.biases = !noBiases
        let experiment = OnlineOfflineExperiment(
            configuration: configuration,
            itemUpdates: .init(order: itemOrder, lambda: itemLambda, learnsOffset: !noItemOffsets, startFromServedRows: !itemResolve)
        ) { Console.info($0) }
        let r: OnlineOfflineExperiment.Result
        do { r = try experiment.run(ratings: read) } catch let e as Trainer.ConfigurationError {
            throw ValidationError(e.description)
        }
        func pct(_ x: Double) -> String { String(format: "%.2f%%", 100 * (r.initialRMSE - x) / r.initialRMSE) }
        print("held-out ratings scored: \(r.heldOutRatings) (skipped \(r.heldOutSkipped) of items unknown to the initial model)")
        print(String(format: "initial model                           RMSE %.4f", r.initialRMSE))
        print(String(format: "after online updates of users (Velox)   RMSE %.4f  (%@ better than initial)", r.onlineRMSE, pct(r.onlineRMSE)))
        print(String(format: "after online updates of users and items RMSE %.4f  (%@ better than initial)", r.itemOnlineRMSE, pct(r.itemOnlineRMSE)))
        print(String(format: "full retrain                            RMSE %.4f  (%@ better than initial)", r.retrainRMSE, pct(r.retrainRMSE)))
        print(String(format: "online updates of users recover %.0f%% of the full retrain's gain", 100 * r.recovered))
        print(String(format: "online updates of users and items recover %.0f%% of the full retrain's gain", 100 * r.recoveredWithItems))
    }
}

extension OnlineOfflineExperiment.ItemUpdates.Order: ExpressibleByArgument {}
