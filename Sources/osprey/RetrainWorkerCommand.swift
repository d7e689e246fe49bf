import ArgumentParser
import Foundation
import Logging
import OspreyEngine
import OspreyModel

/// `osprey retrain-worker`: a retrain's batch steps (gather, train, store) for the server that
/// started it (`serve --retrain-in worker`; ``ProcessRetrainWorker``). Not for people: it
/// writes beside the server only while that server holds the store, and reports on standard
/// output one JSON object a line (``RetrainWorker/Event``); its log goes to standard error.
struct RetrainWorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain-worker",
        abstract: "Run a retrain's gather, train and store steps for the server that started this process.",
        shouldDisplay: false)

    @Option(help: "Data directory.") var dataDir = "osprey-data"
    @Option(help: StoreLocation.help) var store: String?
    @Option(help: "The retrain, as the server's JSON request.") var request: String

    /// Nice levels a worker runs below its server: the whole batch job (its gather, its ALS, its
    /// writes) yields the cores to the server's threads that answer requests.
    static let nice: Int32 = 10

    func run() throws {
        Self.lowerEveryThread()
        let request: RetrainWorker.Request
        do {
            request = try JSONDecoder().decode(RetrainWorker.Request.self, from: Data(self.request.utf8))
        } catch {
            throw ValidationError("--request is not a retrain worker's request: \(error)")
        }
        let logger = Logger(label: "osprey.retrain-worker") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .notice
            return handler
        }
        let server = request.server
        do {
            let stores = try StoreLocation(dataDir: dataDir, store: store).openForWorker(of: server, logger: logger)
            let number = try RetrainWorker.run(request, stores: stores, logger: logger, report: Self.emit,
                                               isCancelled: { getppid() != server })
            Self.emit(RetrainWorker.Event(version: number))
        } catch is Trainer.Cancelled {
            Self.emit(RetrainWorker.Event(cancelled: true))
            throw ExitCode(3)
        } catch {
            Self.emit(RetrainWorker.Event(error: "\(error)"))
            throw ExitCode.failure
        }
    }

    /// Lowers every thread of this process by ``nice`` levels (Linux keeps a nice value per
    /// thread, and a thread inherits its creator's): the runtime's threads exist before `run`, and
    /// the threads made later (ALS's among them) are made by them.
    static func lowerEveryThread() {
        let which = __priority_which_t(PRIO_PROCESS.rawValue)
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        for task in tasks.compactMap({ id_t($0) }) {
            errno = 0
            let current = getpriority(which, task)
            if errno == 0 { _ = setpriority(which, task, min(19, current + nice)) }
        }
    }

    /// Writes one event as a line of JSON on standard output, at once.
    @Sendable static func emit(_ event: RetrainWorker.Event) {
        guard let data = try? JSONEncoder().encode(event) else { return }
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}

/// Runs each retrain's batch steps in a child process, `osprey retrain-worker`, and follows it:
/// its events go to the job, a cancelled job stops it (SIGTERM), and its exit says how it ended.
/// Its log lines reach this process's standard error.
struct ProcessRetrainWorker: RetrainWorkerLauncher {
    /// This program, which has the `retrain-worker` command.
    let executable: String
    /// Where the stores are, as command-line options (``StoreLocation/arguments``).
    let store: [String]

    /// This process's own executable, and the store location it serves.
    init(store location: StoreLocation) {
        executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        store = location.arguments
    }

    func run(_ request: RetrainWorker.Request, report: @escaping @Sendable (RetrainWorker.Event) -> Void,
             isCancelled: @escaping @Sendable () -> Bool) throws -> Int {
        let fm = FileManager.default
        let events = fm.temporaryDirectory.appendingPathComponent("osprey-retrain-\(getpid())-\(request.job).jsonl").path
        guard fm.createFile(atPath: events, contents: nil) else {
            throw RetrainWorkerFailure("cannot create the retrain worker's event file \(events)")
        }
        defer { try? fm.removeItem(atPath: events) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["retrain-worker"] + store + ["--request", String(decoding: try JSONEncoder().encode(request), as: UTF8.self)]
        var last: RetrainWorker.Event?
        do {
            try FollowedProcess.run(process, output: events, isCancelled: isCancelled) { line in
                guard let event = try? JSONDecoder().decode(RetrainWorker.Event.self, from: Data(line.utf8)) else { return }
                report(event)
                last = event
            }
        } catch is Trainer.Cancelled {
            throw Trainer.Cancelled()
        } catch {
            throw RetrainWorkerFailure("cannot start the retrain worker \(executable): \(error)")
        }
        if last?.cancelled == true { throw Trainer.Cancelled() }
        if process.terminationStatus == 0, let version = last?.version { return version }
        let reason = last?.error ?? (process.terminationReason == .uncaughtSignal
            ? "it was killed by signal \(process.terminationStatus)" : "it exited \(process.terminationStatus) without saying why")
        throw RetrainWorkerFailure("the retrain worker failed: \(reason)")
    }
}

/// Why a retrain worker could not give a version.
struct RetrainWorkerFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
