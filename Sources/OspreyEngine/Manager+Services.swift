import Logging
import ServiceLifecycle

extension Manager {
    /// Runs `body` while the manager's ``services`` run, then stops them gracefully, as a
    /// service group does when a server stops: queued observations are answered, changed users
    /// snapshotted, buffered decisions written. For work without a server (the offline retrain,
    /// tests).
    public func withServices<T: Sendable>(logger: Logger, _ body: @Sendable () async throws -> T) async throws -> T {
        let group = ServiceGroup(services: services, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return try result.get()
        }
    }
}
