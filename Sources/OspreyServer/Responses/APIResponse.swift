import Hummingbird

/// A JSON answer of the API. Each endpoint answers with one such type, whose ``write(to:)`` is
/// its one encoder: the router and the event-loop fast path send the same bytes because both
/// call it.
protocol APIResponse {
    /// Writes the answer as one JSON value.
    func write(to w: inout JSONWriter)
}

extension APIResponse {
    /// The answer's bytes.
    var body: ByteBuffer { JSONWriter.body { write(to: &$0) } }

    /// The answer as a response with `status`.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        JSONWriter.response(status: status) { write(to: &$0) }
    }
}
