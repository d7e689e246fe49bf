import Foundation

/// Reads ratings files in any ``RatingsFormat``, detecting which from the first line.
///
/// A malformed line stops the read with a ``RatingsFileError`` that gives its line number; ids
/// and labels must pass the ``InputRules`` the server applies to observations. O(file size).
public struct RatingsReader: Sendable {
    /// Called with (bytes read, total bytes) every few megabytes, for progress display.
    public var progress: (@Sendable (Int, Int) -> Void)?
    /// What each user id, item id and label must be.
    public var rules: InputRules

    public init(rules: InputRules = .init(), progress: (@Sendable (Int, Int) -> Void)? = nil) {
        self.rules = rules
        self.progress = progress
    }

    /// The ratings in the file at `path` and the format they were in.
    /// - Throws: ``RatingsFileError``.
    public func read(path: String) throws -> (ratings: [Rating], format: RatingsFormat) {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RatingsFileError.unreadable(path, (error as NSError).localizedDescription)
        }
        return try parse(data, path: path)
    }

    /// Parses ratings from the bytes of a file; `path` only names it in errors.
    /// - Throws: ``RatingsFileError``.
    public func parse(_ data: Data, path: String) throws -> (ratings: [Rating], format: RatingsFormat) {
        guard let text = String(data: data, encoding: .utf8) else {
            throw RatingsFileError.unreadable(path, "not UTF-8 text")
        }
        var ratings: [Rating] = []
        var format: RatingsFormat?
        var columns: CSVColumns?
        var lineNumber = 0
        var bytesRead = 0
        var nextReport = 4 << 20
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            lineNumber += 1
            bytesRead += line.utf8.count + 1
            if bytesRead >= nextReport {
                progress?(bytesRead, data.count)
                nextReport += 4 << 20
            }
            if line.allSatisfy({ $0 == " " }) { continue }
            if format == nil {
                guard let detected = RatingsFormat.detect(firstLine: line) else { throw RatingsFileError.unknownFormat(path) }
                format = detected
                if detected == .csv {
                    let parsed = try CSVColumns(header: line, path: path)
                    columns = parsed
                    if parsed.isHeader { continue }
                }
            }
            let fields: [Substring]
            switch format! {
            case .movieLensTab: fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            case .movieLensDat: fields = line.split(separator: "::", omittingEmptySubsequences: false)
            case .csv: fields = line.split(separator: ",", omittingEmptySubsequences: false)
            }
            let cols = columns ?? CSVColumns.positional
            ratings.append(try rating(fields, cols, line: lineNumber, path: path))
        }
        progress?(data.count, data.count)
        guard let found = format, !ratings.isEmpty else { throw RatingsFileError.empty(path) }
        return (ratings, found)
    }

    private func rating(_ f: [Substring], _ c: CSVColumns, line: Int, path: String) throws -> Rating {
        guard f.count >= c.minimumFields else {
            throw RatingsFileError.badLine(path, line, "expected at least \(c.minimumFields) fields, found \(f.count)")
        }
        let uid = f[c.user].trimmingCharacters(in: .whitespaces)
        let item = f[c.item].trimmingCharacters(in: .whitespaces)
        let labelText = f[c.label].trimmingCharacters(in: .whitespaces)
        let label: Float
        do throws(InputRuleViolation) {
            try rules.check(id: uid, field: "user id")
            try rules.check(id: item, field: "item id")
            guard let value = Double(labelText) else {
                throw InputRuleViolation(field: "label", problem: "must be a number, got `\(labelText)`")
            }
            label = try rules.check(label: value)
        } catch {
            throw RatingsFileError.badLine(path, line, error.description)
        }
        var timestamp = Double(line)
        if let t = c.timestamp, t < f.count {
            let text = f[t].trimmingCharacters(in: .whitespaces)
            guard let value = Double(text), value.isFinite else {
                throw RatingsFileError.badLine(path, line, "timestamp `\(text)` is not a number")
            }
            timestamp = value
        }
        return Rating(uid: uid, item: item, label: label, timestamp: timestamp)
    }
}

/// Which field holds what; MovieLens formats and header-less CSV use the positional order
/// user, item, label, timestamp.
struct CSVColumns: Sendable {
    var user: Int
    var item: Int
    var label: Int
    var timestamp: Int?
    var isHeader: Bool

    var minimumFields: Int { max(user, item, label) + 1 }

    static let positional = CSVColumns(user: 0, item: 1, label: 2, timestamp: 3, isHeader: false)

    init(user: Int, item: Int, label: Int, timestamp: Int?, isHeader: Bool) {
        self.user = user
        self.item = item
        self.label = label
        self.timestamp = timestamp
        self.isHeader = isHeader
    }

    /// Reads a CSV header; a first line whose third field is a number is data, not a header.
    init(header: Substring, path: String) throws {
        let names = header.split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        if names.count >= 3, Float(names[2]) != nil {
            self = .positional
            return
        }
        func find(_ candidates: [String]) -> Int? { names.firstIndex { candidates.contains($0) } }
        guard let u = find(["userid", "uid", "user", "user_id"]),
              let i = find(["movieid", "item", "itemid", "item_id", "movie_id"]),
              let l = find(["rating", "label", "score"])
        else { throw RatingsFileError.badHeader(path, String(header)) }
        self.init(user: u, item: i, label: l, timestamp: find(["timestamp", "time", "ts"]), isHeader: true)
    }
}
