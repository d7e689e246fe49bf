import Logging
import OspreyEngine

/// Conveniences for tests: the engine itself has one way in for observations
/// (``Ingestor/observe(model:_:completion:)``).
extension Manager {
    /// Observes and waits until the observations are durable and learned; returns the serving
    /// version.
    @discardableResult
    public func observe(model name: String, _ items: [Feedback]) async throws -> Int {
        try await acknowledge(model: name, items).version
    }

    /// The ingestor's observe, awaited: the acknowledgement (serving version, duplicates).
    public func acknowledge(model name: String, _ items: [Feedback]) async throws -> Acknowledgement {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Acknowledgement, any Error>) in
            do {
                try ingestor.observe(model: name, items) { continuation.resume(with: $0.mapError { $0 as any Error }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }

    /// ``observe(model:_:)-(_,[Feedback])`` of `(uid, item, label)` triples.
    @discardableResult
    public func observe(model name: String, _ items: [(uid: String, item: String, label: Float)]) async throws -> Int {
        try await observe(model: name, items.map { Feedback(uid: $0.uid, item: $0.item, label: Double($0.label)) })
    }

    /// Starts the manager's services and stops them at once, as a graceful stop of a server
    /// does: queued observations are answered, changed users snapshotted, decisions written.
    public func shutdown() async throws {
        try await withServices(logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })) {}
    }
}
