import NIOCore
import NIOPosix
import ServiceLifecycle

/// A server's network event loops as a service of its application: the group is created with
/// the application and shut down once the server in front of it has stopped (services stop in
/// reverse order, the server first).
struct EventLoopGroupService: Service {
    let group: MultiThreadedEventLoopGroup

    /// A group of `threads` event-loop threads.
    init(threads: Int) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    /// Waits for the graceful shutdown, then stops the loops.
    func run() async throws {
        try? await gracefulShutdown()
        try await group.shutdownGracefully()
    }
}
