import Foundation

/// A decision's lists in the compact form both decision stores keep them in: ids as UTF-8 joined
/// by NUL (which ids may not contain), scores and exploring values as Float32 (NaN for none),
/// propensities as Float64 (NaN for none), the explored flags as one byte each, all in the
/// machine's byte order. A list holding only its default (no exploring values, propensities of
/// 1, nothing explored: as in a greedy answer) is empty, which saves 130 of a greedy top-10
/// decision's ~330 bytes.
///
/// The buffers are reused from one decision to the next: the stores encode ~20,000 decisions a
/// second under a top-k load.
struct DecisionLists {
    private(set) var ids: [UInt8] = [], scores: [Float] = [], exploring: [Float] = [], propensities: [Double] = []
    private(set) var explored: [UInt8] = [], candidates: [UInt8] = []

    /// Gathers a decision's lists, each in one pass, into the reused buffers. O(items + candidates).
    mutating func gather(_ d: DecisionRecord) {
        ids.removeAll(keepingCapacity: true)
        scores.removeAll(keepingCapacity: true)
        exploring.removeAll(keepingCapacity: true)
        propensities.removeAll(keepingCapacity: true)
        explored.removeAll(keepingCapacity: true)
        var noneExploring = true, certain = true, noneExplored = true
        for (i, shown) in d.items.enumerated() {
            if i > 0 { ids.append(0) }
            ids.append(contentsOf: shown.item.utf8)
            scores.append(shown.score)
            exploring.append(shown.exploring ?? .nan)
            propensities.append(shown.propensity ?? .nan)
            explored.append(shown.explored ? 1 : 0)
            noneExploring = noneExploring && shown.exploring == nil
            certain = certain && shown.propensity == 1
            noneExplored = noneExplored && !shown.explored
        }
        if noneExploring { exploring.removeAll(keepingCapacity: true) }
        if certain { propensities.removeAll(keepingCapacity: true) }
        if noneExplored { explored.removeAll(keepingCapacity: true) }
        candidates.removeAll(keepingCapacity: true)
        for (i, id) in (d.candidates ?? []).enumerated() {
            if i > 0 { candidates.append(0) }
            candidates.append(contentsOf: id.utf8)
        }
    }

    /// The shown items stored as these lists. A list at full length (as rows written before the
    /// defaults were emptied hold) reads the same as an emptied one.
    static func items(ids: Data, scores: Data, exploring: Data, propensities: Data, explored: Data) -> [DecisionRecord.Shown] {
        let ids = split(ids)
        let scores = values(scores, as: Float.self), exploring = values(exploring, as: Float.self)
        let propensities = values(propensities, as: Double.self)
        // An empty list (other than the ids and scores) holds its default.
        let n = min(ids.count, scores.count, exploring.isEmpty ? .max : exploring.count,
                    propensities.isEmpty ? .max : propensities.count, explored.isEmpty ? .max : explored.count)
        return (0..<n).map { i in
            DecisionRecord.Shown(
                item: ids[i], score: scores[i], exploring: exploring.isEmpty || exploring[i].isNaN ? nil : exploring[i],
                propensity: propensities.isEmpty ? 1 : propensities[i].isNaN ? nil : propensities[i],
                explored: !explored.isEmpty && explored[explored.startIndex + i] != 0)
        }
    }

    /// The ids joined by NUL in `data` (the items or the candidates).
    static func split(_ data: Data) -> [String] {
        data.isEmpty ? [] : data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    private static func values<T: BinaryFloatingPoint>(_ data: Data, as: T.Type) -> [T] {
        var out = [T](repeating: .nan, count: data.count / MemoryLayout<T>.size)
        out.withUnsafeMutableBytes { _ = data.copyBytes(to: $0) }
        return out
    }
}
