import Hummingbird

/// Writes JSON responses by hand into one string: the hot endpoints' responses are small and
/// fixed in shape, and this costs less than `JSONEncoder` (NOTES.md: ~10% more requests/s).
struct JSONWriter {
    private(set) var text = ""
    private var needsComma = false

    init() { text.reserveCapacity(128) }

    /// A 200 (or `status`) response with the written JSON body.
    static func response(status: HTTPResponse.Status = .ok, _ build: (inout JSONWriter) -> Void) -> Response {
        var w = JSONWriter()
        build(&w)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(string: w.text)))
    }

    private mutating func separator() {
        if needsComma { text += "," }
        needsComma = true
    }

    mutating func object(_ body: (inout JSONWriter) -> Void) {
        separator()
        text += "{"
        needsComma = false
        body(&self)
        text += "}"
        needsComma = true
    }

    mutating func array(_ body: (inout JSONWriter) -> Void) {
        separator()
        text += "["
        needsComma = false
        body(&self)
        text += "]"
        needsComma = true
    }

    mutating func key(_ k: String) {
        separator()
        Self.appendString(k, to: &text)
        text += ":"
        needsComma = false
    }

    mutating func value(_ s: String) {
        separator()
        Self.appendString(s, to: &text)
    }

    mutating func field(_ k: String, _ s: String) { key(k); value(s) }
    mutating func field(_ k: String, _ n: Int) { key(k); separator(); text += String(n) }
    mutating func field(_ k: String, _ b: Bool) { key(k); separator(); text += b ? "true" : "false" }
    mutating func field(_ k: String, _ x: Float) { key(k); separator(); text += x.isFinite ? x.description : "null" }
    mutating func field(_ k: String, _ x: Double?) {
        key(k)
        separator()
        if let x, x.isFinite { text += x.description } else { text += "null" }
    }
    mutating func field(_ k: String, _ n: Int?) {
        key(k)
        separator()
        text += n.map(String.init) ?? "null"
    }

    /// Appends `s` as a JSON string literal, escaping quotes, backslashes and control characters.
    static func appendString(_ s: String, to out: inout String) {
        out += "\""
        if !s.utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
            out += s
        } else {
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
        }
        out += "\""
    }
}
