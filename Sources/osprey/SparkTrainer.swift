import Foundation
import OspreyEngine
import OspreyModel

/// `osprey retrain --trainer spark`: the retrain's ratings fitted by scripts/spark-train.py on a
/// Spark master (docs/operations.md, "Retraining on Spark"). It exports the ratings as CSV into
/// a temporary directory, runs the PySpark job there, and reads back the factors it writes;
/// the retrain job then imports them as the new version. The directory is removed afterwards.
struct SparkTrainer: ExternalTrainer {
    /// The Python that has pyspark and numpy.
    let python: String
    /// The job: scripts/spark-train.py.
    let script: String
    /// The Spark master URL.
    let master: String

    /// The trainer with the defaults resolved: the script found beside the current directory or
    /// the binary, the Python of its repository's .venv-spark unless `python` (or
    /// OSPREY_SPARK_PYTHON) names another. Checks Java, the Python and its pyspark before the
    /// store is touched.
    /// - Throws: `SparkTrainerError` saying what is missing and how to get it.
    init(master: String, python: String?, script: String?) throws {
        let root = Self.repositoryRoot()
        let script = script ?? root.map { $0 + "/scripts/spark-train.py" } ?? "scripts/spark-train.py"
        guard FileManager.default.fileExists(atPath: script) else {
            throw SparkTrainerError("the Spark job \(script) is not there; name it with --spark-script")
        }
        let python = python ?? ProcessInfo.processInfo.environment["OSPREY_SPARK_PYTHON"]
            ?? (root ?? ".") + "/.venv-spark/bin/python"
        guard Self.java() != nil else {
            throw SparkTrainerError("Spark needs Java, and there is no `java` on the PATH (nor in JAVA_HOME); install a Java 17 runtime (Debian: openjdk-17-jre-headless)")
        }
        let install = "run `bash scripts/install-spark.sh` (it makes .venv-spark), or name a Python that has them with --spark-python or OSPREY_SPARK_PYTHON"
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw SparkTrainerError("no PySpark: \(python) is not there; \(install)")
        }
        let check = try Self.run(python, ["-c", "import pyspark, numpy"])
        guard check.status == 0 else {
            throw SparkTrainerError("no PySpark: \(python) cannot import pyspark and numpy (\(Self.tail(check.stderr, lines: 1))); \(install)")
        }
        self.python = python
        self.script = script
        self.master = master
    }

    /// Exports, runs the job, reads its factors. Prints each step. Cost: the export is
    /// O(ratings); the job's is ALS's, spread over the master's executors.
    func train(_ request: ExternalTrainingRequest) throws -> ExternalTrainingResult {
        let fm = FileManager.default
        let work = fm.temporaryDirectory.appendingPathComponent("osprey-spark-\(UUID().uuidString)").path
        try fm.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: work) }
        let clock = ContinuousClock(), started = clock.now
        func seconds() -> String { String(format: "%.1f s", (clock.now - started).seconds) }

        let ratings = work + "/ratings.csv"
        Console.info("exporting \(request.ratings.count) ratings of \(request.model) to \(ratings)")
        try Self.export(request.ratings, to: ratings)
        Console.info("exported in \(seconds()); running \(script) on \(master)")

        let out = work + "/factors"
        var arguments = [script, ratings, out, "--dim", "\(request.factors)", "--lambda", "\(request.regularization.lambda)",
                         "--iterations", "\(request.iterations)", "--seed", "\(request.seed)", "--master", master]
        if request.regularization.scaled { arguments.append("--scale-lambda") }
        try runJob(arguments, in: work, request: request)
        Console.info("the Spark job finished in \(seconds()); importing its factors")

        let reader = FactorsReader()
        let items = try reader.read(path: out + "/items.json"), users = try reader.read(path: out + "/users.json")
        let source = "spark: master \(master), job \(script); \(request.ratings.count) ratings exported, "
            + "\(items.count) items and \(users.count) users fitted (d=\(request.factors), \(request.regularization), "
            + "\(request.iterations) iterations)"
        return ExternalTrainingResult(items: items, users: users, source: source)
    }

    /// Runs the job with its stdout and stderr in files of `work`; echoes its progress lines
    /// (an `iteration i/n` line goes to the job's record instead) and stops it when the retrain
    /// is cancelled.
    /// - Throws: `SparkTrainerError` with the tail of its stderr when it fails.
    private func runJob(_ arguments: [String], in work: String, request: ExternalTrainingRequest) throws {
        let stdoutPath = work + "/job.out", stderrPath = work + "/job.err"
        guard FileManager.default.createFile(atPath: stdoutPath, contents: nil),
              FileManager.default.createFile(atPath: stderrPath, contents: nil) else {
            throw SparkTrainerError("cannot write the Spark job's output in \(work)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: work)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrPath))
        try FollowedProcess.run(process, output: stdoutPath, isCancelled: request.isCancelled) { line in
            if line.hasPrefix("iteration "), let i = Int(line.dropFirst(10).prefix { $0.isNumber }) {
                request.onIteration(i)
            } else {
                Console.info("  spark: \(line)")
            }
        }
        guard process.terminationStatus == 0 else {
            let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            throw SparkTrainerError("the Spark job (\(script), master \(master)) exited \(process.terminationStatus); from its stderr:\n\(Self.errorLines(stderr))")
        }
    }

    /// Writes the ratings as CSV with the header `uid,item,label` (RFC 4180 quoting). O(ratings).
    static func export(_ ratings: [Rating], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw SparkTrainerError("cannot write \(path)")
        }
        let file = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? file.close() }
        var chunk = "uid,item,label\n"
        for r in ratings {
            chunk += "\(csvField(r.uid)),\(csvField(r.item)),\(r.label)\n"
            if chunk.utf8.count > 1 << 20 {
                try file.write(contentsOf: Data(chunk.utf8))
                chunk = ""
            }
        }
        try file.write(contentsOf: Data(chunk.utf8))
    }

    /// A CSV field: quoted, with quotes doubled, when it holds a comma, a quote or a line break.
    static func csvField(_ s: String) -> String {
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The directory holding scripts/spark-train.py: the current one, or one above the binary
    /// (.build/debug/osprey sits three levels below the repository).
    private static func repositoryRoot() -> String? {
        let fm = FileManager.default
        if fm.fileExists(atPath: "scripts/spark-train.py") { return fm.currentDirectoryPath }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            if fm.fileExists(atPath: dir.appendingPathComponent("scripts/spark-train.py").path) { return dir.path }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// The `java` Spark will run: JAVA_HOME's, or the first on the PATH.
    private static func java() -> String? {
        let environment = ProcessInfo.processInfo.environment
        if let home = environment["JAVA_HOME"], !home.isEmpty {
            return FileManager.default.isExecutableFile(atPath: home + "/bin/java") ? home + "/bin/java" : nil
        }
        return (environment["PATH"] ?? "").split(separator: ":").map { $0 + "/java" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// Runs a short command to its end; its exit status and stderr.
    private static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stderr = Pipe()
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// What says why a job failed: its first error lines (a JVM's exception comes before the
    /// Python traceback it causes) and its last lines, without stack frames.
    static func errorLines(_ stderr: String) -> String {
        let lines = stderr.split(whereSeparator: \.isNewline).map(String.init).filter { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return !trimmed.isEmpty && !trimmed.hasPrefix("at ") && !(trimmed.hasPrefix("...") && trimmed.hasSuffix("more"))
        }
        let errors = lines.filter { line in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            return (line.contains("Exception") || line.contains("Error")) && line.contains(":")
                && !trimmed.hasPrefix("File ") && !trimmed.hasPrefix("raise ")
        }
        var shown = Array(errors.prefix(3))
        for line in lines.suffix(3) where !shown.contains(line) { shown.append(line) }
        return shown.joined(separator: "\n")
    }

    /// The last `lines` non-empty lines of `text`.
    static func tail(_ text: String, lines: Int) -> String {
        text.split(whereSeparator: \.isNewline).suffix(lines).joined(separator: "\n")
    }
}

/// Why `--trainer spark` could not run or failed.
struct SparkTrainerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
