/// Finds a key that appears twice in one object of a JSON text. RFC 8259 leaves such objects'
/// meaning to the reader, and readers differ: `JSONDecoder` keeps the first value, Python's
/// `json` (and so most schema validators) the last. The API rejects them instead (openapi.yaml),
/// so that what a proxy or a validator in front of the server reads is what the server reads.
/// `JSONDecoder` cannot report them (its keyed containers hold each key once), hence this scan.
enum DuplicateKeys {
    /// An object (its keys so far, and the one whose value is being read) or an array (the
    /// index of the element being read).
    private enum Container {
        case object(keys: Set<String>, current: String?)
        case array(index: Int)
    }

    /// The path (`a`, `observations.0.item`) of the first key repeated within one object of
    /// `bytes`, which must be valid JSON (`JSONDecoder` has read it); nil when there is none.
    /// Keys are compared as Swift strings after unescaping, as `JSONDecoder` matches them.
    /// O(length of the text); allocates the keys of the objects it is inside.
    static func first(in bytes: some Collection<UInt8>) -> String? {
        var stack: [Container] = []
        var expectingKey = false
        var i = bytes.startIndex

        func path(_ last: String) -> String {
            var parts: [String] = []
            for c in stack.dropLast() {
                switch c {
                case .object(_, let current): parts.append(current ?? "")
                case .array(let index): parts.append(String(index))
                }
            }
            return (parts + [last]).joined(separator: ".")
        }

        while i != bytes.endIndex {
            let b = bytes[i]
            switch b {
            case UInt8(ascii: "{"):
                stack.append(.object(keys: [], current: nil))
                expectingKey = true
            case UInt8(ascii: "["):
                stack.append(.array(index: 0))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                stack.removeLast()
                expectingKey = false
            case UInt8(ascii: ","):
                switch stack.last {
                case .object?: expectingKey = true
                case .array(let index)?: stack[stack.count - 1] = .array(index: index + 1)
                case nil: break
                }
            case UInt8(ascii: "\""):
                let (text, end) = string(in: bytes, from: bytes.index(after: i))
                i = end
                if expectingKey, case .object(var keys, _)? = stack.last {
                    expectingKey = false
                    stack[stack.count - 1] = .object(keys: [], current: nil)  // no second reference while inserting
                    let (inserted, _) = keys.insert(text)
                    stack[stack.count - 1] = .object(keys: keys, current: text)
                    if !inserted { return path(text) }
                }
                continue
            default:
                break
            }
            i = bytes.index(after: i)
        }
        return nil
    }

    /// The string whose opening quote is just before `start`, unescaped, and the index past its
    /// closing quote. The text is valid JSON, so every escape is well formed and every `\u`
    /// surrogate is paired.
    private static func string<C: Collection<UInt8>>(in bytes: C, from start: C.Index) -> (String, C.Index) {
        var i = start
        var raw: [UInt8] = []
        var escaped = false
        while bytes[i] != UInt8(ascii: "\"") {
            if bytes[i] == UInt8(ascii: "\\") {
                escaped = true
                raw.append(bytes[i])
                i = bytes.index(after: i)
            }
            raw.append(bytes[i])
            i = bytes.index(after: i)
        }
        let end = bytes.index(after: i)
        guard escaped else { return (String(decoding: raw, as: UTF8.self), end) }
        return (unescape(raw), end)
    }

    private static func unescape(_ raw: [UInt8]) -> String {
        var scalars = String.UnicodeScalarView()
        var utf8: [UInt8] = []
        func flush() {
            scalars.append(contentsOf: String(decoding: utf8, as: UTF8.self).unicodeScalars)
            utf8.removeAll()
        }
        func hex(_ at: Int) -> UInt32 {
            raw[at..<(at + 4)].reduce(0) { value, digit in
                let d: UInt8 = switch digit {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
                default: digit - UInt8(ascii: "A") + 10
                }
                return value << 4 | UInt32(d)
            }
        }
        var i = 0
        while i < raw.count {
            guard raw[i] == UInt8(ascii: "\\") else {
                utf8.append(raw[i])
                i += 1
                continue
            }
            let e = raw[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var value = hex(i)
                i += 4
                if value >= 0xD800, value < 0xDC00, i + 6 <= raw.count, raw[i] == UInt8(ascii: "\\"), raw[i + 1] == UInt8(ascii: "u") {
                    let low = hex(i + 2)
                    i += 6
                    value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                }
                flush()
                scalars.append(Unicode.Scalar(value) ?? "\u{FFFD}")
            default: utf8.append(e)  // \" \\ \/
            }
        }
        flush()
        return String(scalars)
    }
}
