import Foundation
import Logging
import OspreyModel
import OspreyStorage

/// A retrain's batch steps — gather, train, store — in a process of their own, so the serving
/// process never holds the ratings, the ALS working set or the users' states as the store step
/// computes them (Velox §4.2:
/// the batch layer trains offline; docs/operations.md, "Retraining in a worker"). The server
/// starts one per retrain with a ``Request`` (``RetrainWorkerLauncher``), follows its
/// ``Event``s, then loads the version it stored and swaps it in as usual.
public enum RetrainWorker {
    /// What a worker retrains: the server's view when the retrain began.
    public struct Request: Codable, Sendable, Equatable {
        public var model: String
        /// The server's job id (log lines carry it).
        public var job: Int
        /// ``RetrainJob/Trigger``'s raw value, recorded in the version's metadata.
        public var trigger: String
        /// The log sequence the new version reflects: the server has learned everything up to it.
        public var through: Int64
        /// The version serving when the retrain began; the worker refuses to train from another.
        public var parent: Int
        /// The process that started the worker (it holds the data directory): a worker process
        /// stops at its next check once it is gone.
        public var server: Int32
        /// ``Manager/Configuration/retrainThreads``.
        public var threads: Int
        /// ``Manager/Configuration/retrainWindow``.
        public var window: Int?
        /// The validation sample's share (``QualityMonitor/Configuration/validationFraction``):
        /// the sample stays out of every fit, in the worker as in the server.
        public var validationFraction: Double
        /// The server learns items online (``Manager/Configuration/itemUpdates``): the worker
        /// also starts and stores the new version's items' states, from the ratings it trained
        /// on and the weights it stored, so the server reads them instead of computing them.
        public var itemStates: Bool

        public init(model: String, job: Int, trigger: String, through: Int64, parent: Int, server: Int32, threads: Int,
                    window: Int?, validationFraction: Double, itemStates: Bool = false) {
            self.model = model
            self.job = job
            self.trigger = trigger
            self.through = through
            self.parent = parent
            self.server = server
            self.threads = threads
            self.window = window
            self.validationFraction = validationFraction
            self.itemStates = itemStates
        }
    }

    /// What a worker reports, one JSON object a line on its standard output.
    public struct Event: Codable, Sendable, Equatable {
        /// The job's new phase (``RetrainJob/Phase``'s raw value).
        public var phase: String?
        /// ALS finished iteration `iteration` of `iterations` of the final fit.
        public var iteration: Int?
        public var iterations: Int?
        /// Candidate λ fitted so far.
        public var lambdaFits: Int?
        /// The version stored (status `built`): the last event of a worker that succeeded.
        public var version: Int?
        /// Why it failed: the last event of a worker that failed.
        public var error: String?
        /// True when it stopped because it was cancelled (or its server went away).
        public var cancelled: Bool?

        public init(phase: String? = nil, iteration: Int? = nil, iterations: Int? = nil, lambdaFits: Int? = nil,
                    version: Int? = nil, error: String? = nil, cancelled: Bool? = nil) {
            self.phase = phase
            self.iteration = iteration
            self.iterations = iterations
            self.lambdaFits = lambdaFits
            self.version = version
            self.error = error
            self.cancelled = cancelled
        }
    }

    /// Runs the batch steps of `request` on `stores` and returns the number of the version it
    /// stored (status `built`, not serving), with its items' states when
    /// ``Request/itemStates`` asks for them. Stops between ALS iterations, and before storing,
    /// when `isCancelled` says so (a worker process also asks whether its server is gone).
    /// O(ratings + ALS + users · d³), plus O(ratings · d² + items · d³) for the items' states.
    /// - Throws: `Trainer.Cancelled`; ``OspreyError`` `conflict` when another version serves
    ///   than `request.parent`; what the trainer and the stores throw.
    public static func run(_ request: Request, stores: Stores, logger: Logger, report: @escaping @Sendable (Event) -> Void,
                           isCancelled: @escaping @Sendable () -> Bool) throws -> Int {
        let parent = try RetrainParent.stored(model: request.model, in: stores)
        guard parent.version.number == request.parent else {
            throw OspreyError(.conflict, "version \(parent.version.number) of `\(request.model)` serves now, not version \(request.parent) the retrain began from")
        }
        var configuration = Manager.Configuration(retrainThreads: request.threads, retrainWindow: request.window)
        configuration.monitor.validationFraction = request.validationFraction
        let run = RetrainRun(
            job: request.job, trigger: RetrainJob.Trigger(rawValue: request.trigger) ?? .request, parent: parent,
            progress: .init(phase: { report(Event(phase: $0.rawValue)) },
                            iteration: { report(Event(iteration: $0, iterations: $1)) },
                            lambdaFits: { report(Event(lambdaFits: $0)) }, isCancelled: isCancelled),
            stores: stores, configuration: configuration, logger: logger)
        let gathered = try run.gather(through: request.through)
        let trained = try run.train(gathered)
        if isCancelled() { throw Trainer.Cancelled() }
        let stored = try run.store(trained, gathered: gathered, keep: request.itemStates ? .weights : .nothing)
        if request.itemStates {
            // As the server would start them on loading the version (``Loader``), bit for bit.
            _ = try stores.startItemStates(of: stored.version, ratings: gathered.ratings, userWeights: { stored.weights[$0] },
                                           seq: stored.version.metadata.trainedThroughSeq ?? gathered.through,
                                           threads: request.threads)
        }
        return stored.version.number
    }
}

/// Starts a retrain worker for a request and follows it to its end (the server's side of
/// ``RetrainWorker``): `osprey serve --retrain-in worker` runs `osprey retrain-worker` as a child
/// process; tests run the steps in their own process.
public protocol RetrainWorkerLauncher: Sendable {
    /// Runs `request` to its end, handing each event to `report`; stops the worker when
    /// `isCancelled` says so. Returns the number of the version it stored.
    /// - Throws: `Trainer.Cancelled` when it was cancelled; an error saying why it failed.
    func run(_ request: RetrainWorker.Request, report: @escaping @Sendable (RetrainWorker.Event) -> Void,
             isCancelled: @escaping @Sendable () -> Bool) throws -> Int
}
