import ArgumentParser
import Foundation
import Logging
import OspreyEngine
import OspreyStorage

/// `osprey retrain`: retrain a model offline (the server on this data directory must be
/// stopped: the directory's lock refuses a retrain beside it; it serves the new version when it
/// starts).
struct RetrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Retrain a model from its initial ratings and the observation log, as a new serving version.",
        discussion: """
            --trainer spark fits the same model (μ, user and item biases; the serving version's d, \
            λ and iterations) on Spark instead of the built-in ALS: the ratings are exported as CSV \
            to a temporary directory, scripts/spark-train.py fits them with PySpark on \
            --spark-master, and its factors are imported as the new version, whose source names \
            the trainer (docs/operations.md, "Retraining on Spark"). It needs Java and PySpark: \
            `bash scripts/install-spark.sh` puts PySpark in .venv-spark.
            """)

    /// Which batch layer fits the new version.
    enum TrainerKind: String, ExpressibleByArgument, CaseIterable {
        /// Osprey's own ALS (Sources/OspreyMath/ALS.swift), in this process.
        case builtin
        /// scripts/spark-train.py on a Spark master.
        case spark
    }

    @Option(help: "Data directory.") var dataDir = "osprey-data"
    @Option(help: StoreLocation.help) var store: String?
    @Option(help: "Model name.") var model: String
    @Option(help: "What fits the new version: builtin (ALS in this process) or spark (scripts/spark-train.py on --spark-master).")
    var trainer: TrainerKind = .builtin
    @Option(help: "With --trainer spark: the Spark master URL.") var sparkMaster = "local[2]"
    @Option(help: "With --trainer spark: a Python with pyspark and numpy (default: $OSPREY_SPARK_PYTHON, else .venv-spark/bin/python).")
    var sparkPython: String?
    @Option(help: "With --trainer spark: the PySpark job (default: scripts/spark-train.py).") var sparkScript: String?

    func validate() throws {
        if trainer != .spark && (sparkPython != nil || sparkScript != nil || sparkMaster != "local[2]") {
            throw ValidationError("--spark-master, --spark-python and --spark-script go with --trainer spark")
        }
    }

    func run() async throws {
        let location = try StoreLocation(dataDir: dataDir, store: store)
        guard location.exists else { throw ValidationError("no Osprey store in \(dataDir)") }
        // Java and PySpark are checked before the store is opened.
        let external: (any ExternalTrainer)?
        do {
            external = trainer == .spark ? try SparkTrainer(master: sparkMaster, python: sparkPython, script: sparkScript) : nil
        } catch let e as SparkTrainerError {
            throw ValidationError(e.description)
        }
        let logger = Console.logger()
        let manager = try Manager(stores: try location.open(), configuration: .init(retrainThreads: 2), logger: logger)
        try await manager.withServices(logger: logger) { try await Self.retrain(model, on: manager, trainingWith: external) }
    }

    /// Runs the retrain job and prints its progress.
    private static func retrain(_ model: String, on manager: Manager, trainingWith external: (any ExternalTrainer)?) async throws {
        let id: Int
        do { id = try manager.retrainer.start(model: model, trainingWith: external) } catch let e as OspreyError {
            throw ValidationError(e.message)
        }
        try await follow(job: id, of: model, on: manager, doing: external == nil ? "retrain" : "retrain on Spark")
    }

    /// Prints a job's progress until it ends; says which version serves, or throws its error.
    static func follow(job id: Int, of model: String, on manager: Manager, doing what: String) async throws {
        var shown = (fits: -1, iteration: -1)
        while true {
            let job = try manager.retrainer.job(id, model: model)
            if job.phase == .training && (job.lambdaFits, job.iteration) != shown && (job.lambdaFits, job.iteration) != (0, 0) {
                shown = (job.lambdaFits, job.iteration)
                let step = job.iteration == 0 && job.lambdaFits > 0
                    ? "choosing λ: \(job.lambdaFits) candidate(s) fitted"
                    : "iteration \(job.iteration)/\(job.iterations)"
                Console.info("  \(job.phase.rawValue): \(step) (\(String(format: "%.1f", job.elapsed)) s)")
            }
            if job.finished {
                if let error = job.error { throw ValidationError("\(what) failed: \(error)") }
                if job.phase == .cancelled { throw ValidationError("\(what) was cancelled") }
                let info = try manager.info(model: model)
                let v = info.versions.first { $0.number == job.version }
                Console.info("\(model) v\(job.version ?? 0) now serves (parent v\(v?.parent ?? 0)), training RMSE \(v?.metadata.trainingRMSE.map { String(format: "%.4f", $0) } ?? "-"), in \(String(format: "%.1f", job.elapsed)) s")
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
