import Foundation
import Hummingbird
import OspreyEngine

/// An error response: a status and `{"error":{"code","message"}}`. Only this module maps
/// errors to HTTP (STYLE.md).
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    /// The `Allow` header of a 405: the methods the path supports.
    let allow: String?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, allow: String? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow
    }

    static func badRequest(_ message: String) -> Self { .init(.badRequest, "bad_request", message) }
    static let payloadTooLarge = APIError(
        .contentTooLarge, "payload_too_large", "the request body is larger than the server's limit (--max-body-bytes)")

    /// A method the path does not support; `allowed` are those it does (RFC 9110 §15.5.6).
    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> Self {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return .init(.methodNotAllowed, "method_not_allowed", "\(method.rawValue) is not allowed on \(path); use \(list)", allow: list)
    }

    /// The JSON body: `{"error":{"code","message"}}`.
    var body: ByteBuffer {
        JSONWriter.body { w in
            w.object { w in
                w.key("error")
                w.object { w in
                    w.field("code", code)
                    w.field("message", message)
                }
            }
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let allow { headers[.allow] = allow }
        return Response(status: status, headers: headers, body: .init(byteBuffer: body))
    }

    /// Maps any error thrown by a handler to its response.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError:
            return e
        case let e as OspreyError:
            switch e.code {
            case .unknownModel: return .init(.notFound, e.code.rawValue, e.message)
            case .unknownItem: return .init(.notFound, e.code.rawValue, e.message)
            case .invalidArgument: return .init(.badRequest, e.code.rawValue, e.message)
            case .unavailable: return .init(.serviceUnavailable, e.code.rawValue, e.message)
            case .unknownVersion, .unknownJob: return .init(.notFound, e.code.rawValue, e.message)
            case .conflict: return .init(.conflict, e.code.rawValue, e.message)
            case .unknownEvent: return .init(.notFound, e.code.rawValue, e.message)
            }
        case let e as any HTTPResponseError where e.status == .contentTooLarge:
            // NIOTooManyBytesError from collecting a body over the limit, or an HTTPError.
            return .payloadTooLarge
        case let e as HTTPError:
            switch e.status {
            case .notFound:
                return .init(.notFound, "not_found", "no such route; see /openapi.yaml for the API")
            default:
                return .init(e.status, "http_\(e.status.code)", e.body ?? e.status.reasonPhrase)
            }
        case let e as DecodingError:
            return .badRequest(describe(e))
        default:
            return .init(.internalServerError, "internal", "internal error: \(error)")
        }
    }

    /// A client-facing account of a JSON decoding failure.
    static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.isEmpty ? "the body" : "`" + keys.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".") + "`"
        }
        switch error {
        case .keyNotFound(let key, let c):
            return "missing field \(path(c.codingPath + [key]))"
        case .valueNotFound(_, let c):
            return c.codingPath.isEmpty ? "the body must be a JSON object, not null" : "field \(path(c.codingPath)) must not be null"
        case .typeMismatch(_, let c):
            return c.codingPath.isEmpty ? "the body must be a JSON object" : "field \(path(c.codingPath)) has the wrong type: \(c.debugDescription)"
        case .dataCorrupted(let c) where c.debugDescription.hasPrefix(StrictDecoding.unknownField):
            return "unknown field \(path(c.codingPath)) (the fields are \(c.debugDescription.dropFirst(StrictDecoding.unknownField.count)))"
        case .dataCorrupted(let c):
            return c.codingPath.isEmpty ? "the body is not valid JSON" : "field \(path(c.codingPath)) is invalid: \(c.debugDescription)"
        @unknown default:
            return "the body could not be decoded"
        }
    }
}

/// Turns every error into a JSON error response, so clients never see an empty or HTML body.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try APIError.from(error).response(from: request, context: context)
        }
    }
}
