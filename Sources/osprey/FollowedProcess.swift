import Foundation
import OspreyModel

/// A child process whose standard output goes to a file, read line by line while it runs: what
/// `retrain --trainer spark` (``SparkTrainer``) and `serve --retrain-in worker`
/// (``ProcessRetrainWorker``) do with the processes they start.
enum FollowedProcess {
    /// Starts `process` (its executable and arguments set; standard error as the caller set it)
    /// with standard output to the file `output` (which must exist) and standard input empty;
    /// hands each line it writes to `line` as it comes, and stops it (SIGTERM) as soon as
    /// `isCancelled` says so. Returns once it exited, every line handed on.
    /// - Throws: `Trainer.Cancelled` when it was stopped; what starting it or opening `output` throws.
    static func run(_ process: Process, output: String, isCancelled: () -> Bool, line: (String) -> Void) throws {
        process.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: output))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let reader = try FileHandle(forReadingFrom: URL(fileURLWithPath: output))
        defer { try? reader.close() }
        var pending = Data()
        func follow() {
            pending += reader.readDataToEndOfFile()
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let text = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...newline)
                line(text)
            }
        }
        while process.isRunning {
            if isCancelled() {
                process.terminate()
                process.waitUntilExit()
                throw Trainer.Cancelled()
            }
            follow()
            Thread.sleep(forTimeInterval: 0.1)
        }
        process.waitUntilExit()
        follow()
    }
}
