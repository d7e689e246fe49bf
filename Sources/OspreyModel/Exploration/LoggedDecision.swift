import Foundation

/// One exploring decision as logged for off-policy evaluation: who was served, what could have
/// been shown, what was shown with each shown item's propensity, and the feedback.
///
/// One JSON object per line (JSONL), snake_case keys, the shape of the server's decision log:
/// ```json
/// {"event_id":"sim-17","uid":"u3","policy":"epsilon_greedy(0.2)",
///  "items":[{"item":"i5","score":3.1,"propensity":0.8}],
///  "candidates":["i5","i9","i2"],"chosen":"i5","reward":3.7}
/// ```
/// `candidates` lists every item the policy chose from (absent: the model's whole catalogue);
/// `chosen` is the item the reward is about (the one clicked or rated; nil with no feedback).
public struct LoggedDecision: Codable, Sendable, Equatable {
    /// One shown item, in display order.
    public struct ShownItem: Codable, Sendable, Equatable {
        public var item: String
        public var score: Float
        /// The logging policy's probability of showing this item at this position.
        public var propensity: Double?

        public init(item: String, score: Float, propensity: Double?) {
            self.item = item
            self.score = score
            self.propensity = propensity
        }
    }

    public var eventId: String
    public var uid: String
    public var policy: String?
    public var items: [ShownItem]
    public var candidates: [String]?
    public var chosen: String?
    public var reward: Double?

    public init(eventId: String, uid: String, policy: String?, items: [ShownItem], candidates: [String]?,
                chosen: String?, reward: Double?) {
        self.eventId = eventId
        self.uid = uid
        self.policy = policy
        self.items = items
        self.candidates = candidates
        self.chosen = chosen
        self.reward = reward
    }

    enum CodingKeys: String, CodingKey {
        case eventId = "event_id", uid, policy, items, candidates, chosen, reward
    }

    /// The logging propensity of the chosen item: its propensity at the position it was shown.
    public var chosenPropensity: Double? {
        guard let chosen else { return nil }
        return items.first { $0.item == chosen }?.propensity
    }

    /// An error reading a decision log, with the line it is about.
    public struct ReadError: Error, CustomStringConvertible {
        public let line: Int
        public let message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// Parses a JSONL decision log (blank lines skipped). O(size).
    /// - Throws: ``ReadError`` naming the first line that is not a decision.
    public static func readJSONL(_ text: String) throws -> [LoggedDecision] {
        let decoder = JSONDecoder()
        var out: [LoggedDecision] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            guard !line.allSatisfy(\.isWhitespace) else { continue }
            do {
                out.append(try decoder.decode(LoggedDecision.self, from: Data(line.utf8)))
            } catch {
                throw ReadError(line: n + 1, message: "not a logged decision (\(error))")
            }
        }
        return out
    }

    /// One JSON line (no newline), keys sorted.
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }
}
