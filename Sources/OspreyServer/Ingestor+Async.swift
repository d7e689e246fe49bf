import OspreyEngine

extension Ingestor {
    /// ``observe(model:_:completion:)`` for a route handler: suspends until the observations
    /// are durable and learned and returns the acknowledgement (the serving version, the
    /// duplicates).
    /// - Throws: what the check throws, or ``OspreyError`` `unavailable` when the log cannot commit.
    @discardableResult
    func observe(model name: String, _ items: [Feedback]) async throws -> Acknowledgement {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Acknowledgement, any Error>) in
            do {
                try observe(model: name, items) { continuation.resume(with: $0.mapError { $0 as any Error }) }
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}
