import Foundation
import Hummingbird
import OspreyEngine
import OspreyStorage

/// An error response: a status and `{"error":{"code","message"}}`. Only this module maps
/// errors to HTTP (STYLE.md).
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let code: String
    let message: String
    /// The `Allow` header of a 405: the methods the path supports.
    let allow: String?
    /// The `WWW-Authenticate` header of a 401.
    let challenge: String?
    /// The node serving the user, for a 421 (docs/operations.md, "Partitioned serving").
    let owner: ClusterMember?

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String, allow: String? = nil, challenge: String? = nil,
         owner: ClusterMember? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.allow = allow
        self.challenge = challenge
        self.owner = owner
    }

    /// No `Authorization: Bearer` token, or one the server does not have (docs/operations.md,
    /// "Access tokens"). The message never repeats what was sent.
    static let unauthorized = APIError(
        .unauthorized, "unauthorized", "this endpoint needs an access token: send `Authorization: Bearer TOKEN` with a token the server has",
        challenge: "Bearer")

    /// A known token without the role `role` the endpoint needs.
    static func forbidden(_ role: AccessRole) -> Self {
        .init(.forbidden, "forbidden", "this endpoint needs a token with the `\(role.rawValue)` role")
    }

    static func badRequest(_ message: String) -> Self { .init(.badRequest, "bad_request", message) }
    static let payloadTooLarge = APIError(
        .contentTooLarge, "payload_too_large", "the request body is larger than the server's limit (--max-body-bytes)")

    /// A method the path does not support; `allowed` are those it does (RFC 9110 §15.5.6).
    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> Self {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        return .init(.methodNotAllowed, "method_not_allowed", "\(method.rawValue) is not allowed on \(path); use \(list)", allow: list)
    }

    /// The JSON body: `{"error":{"code","message"}}`, and for a 421 `"owner":{"node","address"}`.
    var body: ByteBuffer {
        JSONWriter.body { w in
            w.object { w in
                w.key("error")
                w.object { w in
                    w.field("code", code)
                    w.field("message", message)
                    if let owner {
                        w.key("owner")
                        w.object { w in
                            w.field("node", owner.name)
                            w.field("address", owner.address)
                        }
                    }
                }
            }
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let allow { headers[.allow] = allow }
        if let challenge { headers[.wwwAuthenticate] = challenge }
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
            case .misdirected: return .init(.misdirectedRequest, e.code.rawValue, e.message, owner: e.owner)
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
        case let e as BodyError:
            return .badRequest(e.description)
        case let e as DecodingError:
            return .badRequest(describe(e))
        default:
            return .init(.internalServerError, "internal", "internal error: \(error)")
        }
    }

    /// A client-facing account of a JSON decoding failure that is not a ``BodyError``: the body
    /// is not JSON at all, or (were a body read without StrictDecoding.swift's helpers) a value
    /// of the wrong type, named by its path, in the API's words rather than `JSONDecoder`'s.
    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .dataCorrupted(let c) where c.codingPath.isEmpty:
            return "the body is not valid JSON"
        case .typeMismatch(let type, let c) where c.codingPath.isEmpty, .valueNotFound(let type, let c) where c.codingPath.isEmpty:
            return "the body must be \((type as? any BodyFieldType.Type)?.expected ?? "a JSON object")"
        case .keyNotFound:
            return "\(BodyError.name(error.path)) is missing"
        default:
            let expected = switch error {
            case .typeMismatch(let type, _), .valueNotFound(let type, _): (type as? any BodyFieldType.Type)?.expected
            default: String?.none
            }
            return "\(BodyError.name(error.path)) " + (expected.map { "must be \($0)" } ?? "is not what the schema allows")
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
