import Foundation
import NIOHTTP1

/// How the fast path reads a request target against the ``Endpoint`` table.
extension FastPathHandler {
    /// A path segment of a fast-path endpoint: its bytes, or a parameter's name.
    enum Segment {
        case literal([UInt8])
        case parameter(String)
    }

    /// The ``Endpoint`` table's fast-path entries, their paths split once into segments (the
    /// first is the empty text before the leading `/`).
    static let patterns: [(endpoint: Endpoint, method: HTTPMethod, segments: [Segment])] =
        Endpoint.allCases.filter(\.onFastPath).map { endpoint in
            let segments = endpoint.path.split(separator: "/", omittingEmptySubsequences: false).map { part -> Segment in
                part.hasPrefix("{") && part.hasSuffix("}") ? .parameter(String(part.dropFirst().dropLast())) : .literal(Array(part.utf8))
            }
            return (endpoint, HTTPMethod(rawValue: endpoint.method.rawValue), segments)
        }

    /// The most segments a fast-path path has.
    private static let maxSegments = patterns.map(\.segments.count).max() ?? 0

    /// The fast-path route of a request, or nil when the router must answer it: a request whose
    /// method and path (in origin form; any other form of target goes to the router) match one of
    /// ``patterns``, with non-empty `model` and `uid`; predict's `item` comes from the query.
    /// Reads the target's bytes in place: O(its length + patterns · segments), allocating only
    /// the strings it returns.
    static func route(_ request: HTTPRequestHead) -> Route? {
        var target = request.uri
        return target.withUTF8 { route(request.method, target: $0) }
    }

    private static func route(_ method: HTTPMethod, target: UnsafeBufferPointer<UInt8>) -> Route? {
        let pathEnd = target.firstIndex(of: UInt8(ascii: "?")) ?? target.count
        var segments = InlineArray<8, Range<Int>>(repeating: 0..<0)
        var count = 0, start = 0
        for i in 0...pathEnd where i == pathEnd || target[i] == UInt8(ascii: "/") {
            guard count < maxSegments else { return nil }
            segments[count] = start..<i
            count += 1
            start = i + 1
        }
        patterns: for (index, pattern) in patterns.enumerated() where pattern.method == method && pattern.segments.count == count {
            // Literals first, so a request decodes its parameters once, for the pattern it matches.
            for (n, segment) in pattern.segments.enumerated() {
                if case .literal(let text) = segment, !target[segments[n]].elementsEqual(text) { continue patterns }
            }
            var model: String?, uid: String?
            for (n, segment) in pattern.segments.enumerated() {
                guard case .parameter(let name) = segment else { continue }
                let bytes = target[segments[n]]
                guard !bytes.isEmpty, let value = decoded(bytes) else { return nil }
                if name == "model" { model = value } else if name == "uid" { uid = value }
            }
            guard let model, let uid else { return nil }
            var route = Route(endpoint: pattern.endpoint, pattern: index, model: model, uid: uid)
            if pattern.endpoint == .predict, pathEnd < target.count {
                route.item = API.queryValue("item", in: target[(pathEnd + 1)...])
            }
            return route
        }
        return nil
    }

    /// A path segment, percent-decoded as the router decodes it (nil if it cannot be).
    private static func decoded(_ segment: Slice<UnsafeBufferPointer<UInt8>>) -> String? {
        let text = String(decoding: UnsafeBufferPointer(rebasing: segment), as: UTF8.self)
        guard segment.contains(UInt8(ascii: "%")) else { return text }
        return text.removingPercentEncoding
    }
}
