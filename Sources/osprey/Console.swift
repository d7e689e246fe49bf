import Foundation
import Logging

/// Writing to the terminal: messages on stderr, progress only when stderr is a terminal.
enum Console {
    static let isTerminal = isatty(STDERR_FILENO) == 1

    /// A logger to stderr at `info`, for the offline commands that run an engine's jobs.
    static func logger() -> Logger {
        Logger(label: "osprey") { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
    }

    static func info(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// A progress callback for reading a file of `total` bytes (silent off a terminal).
    static func fileProgress(_ label: String) -> (@Sendable (Int, Int) -> Void)? {
        guard isTerminal else { return nil }
        return { done, total in
            guard total > 8 << 20 else { return }
            let pct = total > 0 ? done * 100 / total : 100
            FileHandle.standardError.write(Data("\r\(label): \(pct)% of \(total >> 20) MiB".utf8))
            if done >= total { FileHandle.standardError.write(Data("\n".utf8)) }
        }
    }
}
