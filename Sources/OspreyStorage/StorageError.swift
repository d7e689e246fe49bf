/// A storage failure. The code says what kind; the message says what and where.
public struct StorageError: Error, CustomStringConvertible {
    public enum Code: String, Sendable {
        case notFound
        case corrupt
        case io
        case conflict
        /// Another process holds the data directory's lock (``DataDirectoryLock``).
        case locked
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
