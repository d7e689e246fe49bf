import Hummingbird

/// Writes JSON responses by hand straight into a `ByteBuffer`: the hot endpoints' responses are
/// small and fixed in shape, and this costs less than `JSONEncoder` (about 10% more
/// requests/s on a minimal handler) or building a `String` first. Each endpoint's answer is one
/// ``APIResponse`` type whose `write(to:)` is its one encoder.
struct JSONWriter {
    private(set) var buffer: ByteBuffer
    private var needsComma = false

    init() { buffer = ByteBuffer() ; buffer.reserveCapacity(160) }

    /// The written JSON.
    static func body(_ build: (inout JSONWriter) -> Void) -> ByteBuffer {
        var w = JSONWriter()
        build(&w)
        return w.buffer
    }

    /// A 200 (or `status`) response with the written JSON body.
    static func response(status: HTTPResponse.Status = .ok, _ build: (inout JSONWriter) -> Void) -> Response {
        var w = JSONWriter()
        build(&w)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: w.buffer))
    }

    private mutating func separator() {
        if needsComma { buffer.writeStaticString(",") }
        needsComma = true
    }

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        buffer.writeStaticString("{")
        needsComma = false
        body(&self)
        buffer.writeStaticString("}")
        needsComma = true
    }

    mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        buffer.writeStaticString("[")
        needsComma = false
        body(&self)
        buffer.writeStaticString("]")
        needsComma = true
    }

    mutating func key(_ k: String) {
        separator()
        Self.writeString(k, to: &buffer)
        buffer.writeStaticString(":")
        needsComma = false
    }

    mutating func value(_ s: String) {
        separator()
        Self.writeString(s, to: &buffer)
    }

    mutating func null() { raw("null") }

    /// Writes a number (`null` when it is not finite).
    mutating func number(_ x: Double) { raw(x.isFinite ? x.description : "null") }

    private mutating func raw(_ text: String) {
        separator()
        buffer.writeString(text)
    }

    mutating func field(_ k: String, _ s: String) { key(k); value(s) }
    mutating func field(_ k: String, _ n: Int) { key(k); raw(String(n)) }
    mutating func field(_ k: String, _ b: Bool) { key(k); raw(b ? "true" : "false") }
    mutating func field(_ k: String, _ x: Float) { key(k); raw(x.isFinite ? x.description : "null") }
    mutating func field(_ k: String, _ x: Double?) {
        key(k)
        if let x, x.isFinite { raw(x.description) } else { raw("null") }
    }
    mutating func field(_ k: String, _ n: Int?) {
        key(k)
        raw(n.map(String.init) ?? "null")
    }

    /// Writes `s` as a JSON string literal, escaping quotes, backslashes and control characters.
    static func writeString(_ s: String, to out: inout ByteBuffer) {
        let plain = s.utf8.withContiguousStorageIfAvailable { bytes in
            for b in bytes where b < 0x20 || b == 0x22 || b == 0x5C { return false }
            return true
        } ?? !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C })
        if plain {
            out.writeStaticString("\"")
            out.writeString(s)
            out.writeStaticString("\"")
        } else {
            var escaped = ""
            appendString(s, to: &escaped)
            out.writeString(escaped)
        }
    }

    /// Appends `s` as a JSON string literal to a `String`, escaping quotes, backslashes and
    /// control characters.
    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }
}

extension Response {
    /// A 200 response with a JSON body.
    static func json(_ body: ByteBuffer) -> Response {
        Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: body))
    }
}
