import Hummingbird

/// The API's paths and the methods each supports, as ``API/register(on:)`` registers them, so
/// that a request the router cannot match is told apart: a known path with another method is a
/// 405 with an `Allow` header (RFC 9110 §15.5.6), anything else the router's 404.
struct RouteTable: Sendable {
    private struct Route: Sendable {
        /// The path's segments; nil stands for a `{parameter}`.
        let segments: [Substring?]
        var methods: [HTTPRequest.Method]
    }

    private var routes: [Route] = []

    mutating func add(_ method: HTTPRequest.Method, _ path: String) {
        let segments = path.split(separator: "/").map { $0.hasPrefix("{") && $0.hasSuffix("}") ? nil : $0 }
        if let n = routes.firstIndex(where: { $0.segments == segments }) {
            routes[n].methods.append(method)
        } else {
            routes.append(Route(segments: segments, methods: [method]))
        }
    }

    /// The methods registered for the paths `path` matches, in the order registered (none for
    /// a path the API does not have). The path is split as the router splits it (empty segments
    /// dropped), and a parameter matches any segment. O(routes · segments).
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/")
        var methods: [HTTPRequest.Method] = []
        for route in routes where route.segments.count == segments.count {
            if zip(route.segments, segments).allSatisfy({ $0 == nil || $0 == $1 }) {
                methods += route.methods.filter { !methods.contains($0) }
            }
        }
        return methods
    }
}

/// Answers a request the router found no route for with a 405 when its path is known (with
/// other methods). It is added to the router after every route, so Hummingbird applies it only
/// to the router's not-found responder (a middleware applies to the routes added after it, and
/// the not-found responder is built with all of them): matched requests never pass here.
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let allowed = routes.methods(for: path)
        guard !allowed.isEmpty, !allowed.contains(request.method) else { return try await next(request, context) }
        throw APIError.methodNotAllowed(request.method, path: path, allowed: allowed)
    }
}
