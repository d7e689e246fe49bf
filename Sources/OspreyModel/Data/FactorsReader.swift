import Foundation
import OspreyMath

/// Factor vectors trained elsewhere: one row of `dimension` floats per id (an item's feature
/// vector or a user's weights), with an optional offset per row (an item's constant term, added
/// to every prediction of it; 0 when the file has none).
public struct ImportedFactors: Sendable, Equatable {
    /// The length of every vector.
    public let dimension: Int
    /// The ids in file order.
    public let ids: [String]
    /// Row i's vector: `vectors[i * dimension ..< (i + 1) * dimension]`.
    public let vectors: [Float]
    /// Row i's offset.
    public let offsets: [Float]
    /// The file or directory they were read from, as given.
    public let path: String

    /// - Precondition: `vectors.count == ids.count * dimension`, one offset per id.
    public init(dimension: Int, ids: [String], vectors: [Float], offsets: [Float], path: String) {
        precondition(vectors.count == ids.count * dimension && offsets.count == ids.count, "one vector and one offset per id")
        self.dimension = dimension
        self.ids = ids
        self.vectors = vectors
        self.offsets = offsets
        self.path = path
    }

    /// The number of rows.
    public var count: Int { ids.count }

    /// Row `i`'s vector. O(d).
    public func vector(_ i: Int) -> [Float] { Array(vectors[(i * dimension)..<((i + 1) * dimension)]) }

    /// The rows as a materialized feature table (each row padded to the kernels' stride). O(rows · d).
    public func materialized() -> MaterializedFeatures {
        let stride = VectorKernels.paddedStride(dimension)
        var table = [Float](repeating: 0, count: ids.count * stride)
        for i in 0..<ids.count {
            for k in 0..<dimension { table[i * stride + k] = vectors[i * dimension + k] }
        }
        return MaterializedFeatures(dimension: dimension, ids: ids, table: table, offsets: offsets)
    }
}

/// Reads factor vectors trained elsewhere into ``ImportedFactors``: JSON lines or CSV, from a file
/// or from a directory of part files (what Spark's `df.write.json` or `df.write.csv` writes).
///
/// - JSON lines: one object a line, `{"id": ..., "features": [...]}` as Spark writes an ALSModel's
///   `itemFactors` and `userFactors`. The id is a string or an integer; an optional `"offset"`
///   is the row's constant term. Other keys are an error (a misspelt key should not vanish).
/// - CSV with a header: the id first, then one column per factor; a column named `offset` is the
///   row's constant term instead of a factor.
///
/// The format is told from the first non-blank character (`{` is JSON lines). A directory is read
/// file by file in name order, skipping hidden files, `_SUCCESS` and `.crc` files. Blank lines
/// are skipped. Every row must have the first row's dimension (1...512), finite values, and an
/// id that passes the ``InputRules`` and appears once. A bad line stops the read with a
/// ``FactorsFileError`` that names its file and line. O(file size).
public struct FactorsReader: Sendable {
    /// What each id must be.
    public var rules: InputRules
    /// Called with (bytes read, total bytes) as the files are read.
    public var progress: @Sendable (Int, Int) -> Void

    /// The largest dimension a row may have (as for training).
    public static let maxDimension = 512

    public init(rules: InputRules = .init(), progress: @escaping @Sendable (Int, Int) -> Void = { _, _ in }) {
        self.rules = rules
        self.progress = progress
    }

    /// The rows in the file, or in the directory's part files, at `path`.
    /// - Throws: ``FactorsFileError``.
    public func read(path: String) throws(FactorsFileError) -> ImportedFactors {
        let files = try Self.files(at: path)
        var parsed = Parsed()
        let total = files.reduce(0) { $0 + $1.size }
        var done = 0
        for file in files {
            let data: Data
            do {
                data = try Data(contentsOf: URL(fileURLWithPath: file.path))
            } catch {
                throw .unreadable(file.path, (error as NSError).localizedDescription)
            }
            guard let text = String(data: data, encoding: .utf8) else { throw .unreadable(file.path, "not UTF-8 text") }
            try parse(text: text, path: file.path, into: &parsed)
            done += file.size
            progress(done, total)
        }
        return try parsed.factors(path: path)
    }

    /// Parses the text of one file; `path` names it in errors. O(text length).
    /// - Throws: ``FactorsFileError``.
    public func parse(text: String, path: String = "factors") throws(FactorsFileError) -> ImportedFactors {
        var parsed = Parsed()
        try parse(text: text, path: path, into: &parsed)
        return try parsed.factors(path: path)
    }

    /// What has been read so far, over every file of a directory.
    private struct Parsed {
        var dimension: Int?
        var ids: [String] = []
        var vectors: [Float] = []
        var offsets: [Float] = []
        /// Where each id was first seen, to name it when it appears again.
        var seen: [String: String] = [:]

        /// The rows read from `path`.
        /// - Throws: ``FactorsFileError`` when there are none.
        func factors(path: String) throws(FactorsFileError) -> ImportedFactors {
            guard let dimension, !ids.isEmpty else { throw .empty(path) }
            return ImportedFactors(dimension: dimension, ids: ids, vectors: vectors, offsets: offsets, path: path)
        }
    }

    /// The files to read: `path` itself, or its directory's data files in name order.
    private static func files(at path: String) throws(FactorsFileError) -> [(path: String, size: Int)] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw .unreadable(path, "no such file or directory")
        }
        func size(_ p: String) -> Int { ((try? FileManager.default.attributesOfItem(atPath: p))?[.size] as? NSNumber)?.intValue ?? 0 }
        guard isDirectory.boolValue else { return [(path, size(path))] }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            throw .unreadable(path, (error as NSError).localizedDescription)
        }
        let data = names.filter { !$0.hasPrefix(".") && !$0.hasPrefix("_") && !$0.hasSuffix(".crc") }.sorted()
        guard !data.isEmpty else { throw .empty(path) }
        return data.map { let p = (path as NSString).appendingPathComponent($0); return (p, size(p)) }
    }

    private func parse(text: String, path: String, into parsed: inout Parsed) throws(FactorsFileError) {
        var lines: [(number: Int, text: Substring)] = []
        var number = 0
        // "\r\n" is one Character: split on it too, or a CRLF file would be one line.
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            number += 1
            var l = line
            if l.last == "\r" { l = l.dropLast() }
            if number == 1, l.first == "\u{FEFF}" { l = l.dropFirst() }
            if !l.allSatisfy({ $0 == " " || $0 == "\t" }) { lines.append((number, l)) }
        }
        guard let first = lines.first else { return }
        if first.text.drop(while: { $0 == " " }).first == "{" {
            for (number, line) in lines { try add(try jsonRow(line, path: path, line: number), path: path, line: number, into: &parsed) }
        } else {
            let columns = CSVColumns(header: first.text)
            try columns.check(path: path, line: first.number)
            for (number, line) in lines.dropFirst() {
                try add(try columns.row(line, path: path, line: number), path: path, line: number, into: &parsed)
            }
        }
    }

    /// One row as read, before it is checked against the others.
    private struct Row {
        var id: String
        var values: [Double]
        var offset: Double
    }

    private func add(_ row: Row, path: String, line: Int, into parsed: inout Parsed) throws(FactorsFileError) {
        do throws(InputRuleViolation) {
            try rules.check(id: row.id, field: "id")
        } catch {
            throw .badLine(path, line, error.description)
        }
        let dimension = parsed.dimension ?? row.values.count
        guard (1...Self.maxDimension).contains(row.values.count) else {
            throw .badLine(path, line, "has \(row.values.count) factors; a vector has 1 to \(Self.maxDimension)")
        }
        guard row.values.count == dimension else {
            throw .badLine(path, line, "has \(row.values.count) factors where the first row has \(dimension)")
        }
        let limit = Double(Float.greatestFiniteMagnitude)
        if let bad = row.values.firstIndex(where: { !$0.isFinite || abs($0) > limit }) {
            throw .badLine(path, line, "factor \(bad) (\(row.values[bad])) is not a finite 32-bit number")
        }
        guard row.offset.isFinite, abs(row.offset) <= limit else {
            throw .badLine(path, line, "offset \(row.offset) is not a finite 32-bit number")
        }
        let place = "\(path) line \(line)"
        if let earlier = parsed.seen.updateValue(place, forKey: row.id) {
            throw .badLine(path, line, "id `\(row.id)` appears twice (first at \(earlier))")
        }
        parsed.dimension = dimension
        parsed.ids.append(row.id)
        parsed.vectors += row.values.map(Float.init)
        parsed.offsets.append(Float(row.offset))
    }

    /// A JSON-lines row: `{"id": "i1" or 17, "features": [..], "offset": 0.5 (optional)}`.
    private func jsonRow(_ line: Substring, path: String, line number: Int) throws(FactorsFileError) -> Row {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        } catch {
            throw .badLine(path, number, "is not a JSON object (\((error as NSError).localizedDescription))")
        }
        guard let fields = object as? [String: Any] else { throw .badLine(path, number, "is not a JSON object") }
        if let unknown = fields.keys.sorted().first(where: { !["id", "features", "offset"].contains($0) }) {
            throw .badLine(path, number, "has an unknown key `\(unknown)` (a row has id, features and, optionally, offset)")
        }
        let id: String
        switch fields["id"] {
        case let s as String: id = s
        case let n as NSNumber where Self.isInteger(n): id = n.stringValue
        case nil: throw .badLine(path, number, "has no `id`")
        default: throw .badLine(path, number, "`id` must be a string or an integer")
        }
        guard let list = fields["features"] as? [Any] else {
            throw .badLine(path, number, fields["features"] == nil ? "has no `features`" : "`features` must be an array of numbers")
        }
        var values: [Double] = []
        values.reserveCapacity(list.count)
        for (k, v) in list.enumerated() {
            guard let n = v as? NSNumber, !Self.isBoolean(n) else { throw .badLine(path, number, "features[\(k)] is not a number") }
            values.append(n.doubleValue)
        }
        var offset = 0.0
        if let o = fields["offset"] {
            guard let n = o as? NSNumber, !Self.isBoolean(n) else { throw .badLine(path, number, "`offset` must be a number") }
            offset = n.doubleValue
        }
        return Row(id: id, values: values, offset: offset)
    }

    private static func isBoolean(_ n: NSNumber) -> Bool {
        String(cString: n.objCType) == "c"  // JSON true and false; integers are `i` or `q`, reals `d`
    }

    private static func isInteger(_ n: NSNumber) -> Bool {
        !isBoolean(n) && n.doubleValue.rounded() == n.doubleValue && abs(n.doubleValue) < 9e15
    }

    /// The columns of a CSV factors file: the id, the factors, and perhaps an offset.
    private struct CSVColumns {
        let names: [String]
        let offsetColumn: Int?

        init(header: Substring) {
            let names = header.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            self.names = names
            offsetColumn = names.indices.dropFirst().first { names[$0].lowercased() == "offset" }
        }

        func check(path: String, line: Int) throws(FactorsFileError) {
            guard names.count >= 2 else {
                throw .badLine(path, line, "the header must name the id column and at least one factor column (id,f0,f1,...)")
            }
            if names.dropFirst().allSatisfy({ Double($0) != nil }) {
                throw .badLine(path, line, "the first line must be a header (id,f0,f1,...), not data")
            }
        }

        func row(_ line: Substring, path: String, line number: Int) throws(FactorsFileError) -> Row {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == names.count else {
                throw .badLine(path, number, "expected \(names.count) fields as the header names, found \(cells.count)")
            }
            var values: [Double] = [], offset = 0.0
            for k in 1..<cells.count {
                guard let v = Double(cells[k]) else { throw .badLine(path, number, "`\(names[k])` value `\(cells[k])` is not a number") }
                if k == offsetColumn { offset = v } else { values.append(v) }
            }
            return Row(id: cells[0], values: values, offset: offset)
        }
    }
}

/// A factors file that cannot be imported; the description names the file and line.
public struct FactorsFileError: Error, CustomStringConvertible, Equatable {
    public let description: String

    static func unreadable(_ path: String, _ reason: String) -> Self { .init(description: "cannot read factors \(path): \(reason)") }
    static func empty(_ path: String) -> Self { .init(description: "factors \(path) hold no rows") }
    static func badLine(_ path: String, _ line: Int, _ reason: String) -> Self { .init(description: "\(path) line \(line): \(reason)") }
}
