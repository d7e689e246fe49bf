import Foundation

/// Reads an items file: CSV with a header, one catalogue item a line, into ``CatalogueItem``s in
/// file order.
///
/// The first column is the item id, whatever the header calls it (`movieId`, `item`); each other
/// column is an attribute named by the header. Values follow RFC 4180: a value holding a comma, a
/// quote or a line break is quoted, and `""` inside quotes is one quote, so MovieLens `movies.csv`
/// (`movieId,title,genres`) reads as it is. Lines end in `\n` or `\r\n`; a UTF-8 byte order mark
/// at the start is skipped; lines holding only spaces are skipped.
///
/// Each column's values take one kind, chosen from the whole column:
/// - a column in which any value contains `|` is multi-valued: every value becomes
///   ``AttributeValue/strings(_:)``, split on `|`, each piece trimmed and empty pieces dropped
///   (MovieLens genres `Comedy|Romance`; a lone `(no genres listed)` is a list of one);
/// - otherwise a column in which every non-empty value is a finite number is numeric
///   (``AttributeValue/number(_:)``);
/// - otherwise values are ``AttributeValue/string(_:)``, categories and texts alike: how to
///   tokenize them is the feature function's choice, not the reader's.
///
/// An empty cell (or a multi-valued cell with no pieces) means the item lacks that attribute.
/// Values and ids are trimmed of surrounding spaces. Ids must pass the ``InputRules`` the server
/// applies and be unique; attributes must pass ``AttributeRules``. A malformed line stops the read
/// with an ``ItemsFileError`` naming its line number (the header is line 1). O(file size).
public struct ItemsReader: Sendable {
    /// What each item id must be.
    public var rules: InputRules
    /// What each item's attributes must be.
    public var attributeRules: AttributeRules

    public init(rules: InputRules = .init(), attributeRules: AttributeRules = .default) {
        self.rules = rules
        self.attributeRules = attributeRules
    }

    /// The items in the file at `path`, in file order. O(file size).
    /// - Throws: ``ItemsFileError``.
    public func read(path: String) throws(ItemsFileError) -> [CatalogueItem] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path, (error as NSError).localizedDescription)
        }
        return try parse(data, path: path)
    }

    /// Parses items from the bytes of a file; `path` only names it in errors. O(file size).
    /// - Throws: ``ItemsFileError``.
    public func parse(_ data: Data, path: String) throws(ItemsFileError) -> [CatalogueItem] {
        guard let text = String(data: data, encoding: .utf8) else { throw .unreadable(path, "not UTF-8 text") }
        return try parse(text: text, path: path)
    }

    /// Parses items from the text of a file; `path` only names it in errors. O(text length).
    /// - Throws: ``ItemsFileError``.
    public func parse(text: String, path: String = "items") throws(ItemsFileError) -> [CatalogueItem] {
        var records = CSVRecordReader(text)
        guard let header = try records.next(path: path) else { throw .empty(path, "has no header") }
        let names = header.fields.map { $0.trimmingCharacters(in: .whitespaces) }
        try checkHeader(names, line: header.line, path: path)

        // First pass: the cells of every line, so each column's kind is chosen from all its values.
        var rows: [(line: Int, id: String, cells: [String])] = []
        var lineOfID: [String: Int] = [:]
        while let record = try records.next(path: path) {
            guard record.fields.count == names.count else {
                throw .badLine(path, record.line, "expected \(names.count) fields as the header names, found \(record.fields.count)\(record.fields.count > names.count ? " (quote a value that contains a comma)" : "")")
            }
            let id = record.fields[0].trimmingCharacters(in: .whitespaces)
            do throws(InputRuleViolation) {
                try rules.check(id: id, field: "item id")
            } catch {
                throw .badLine(path, record.line, error.description)
            }
            if let first = lineOfID.updateValue(record.line, forKey: id) {
                throw .badLine(path, record.line, "item id `\(id)` appears twice (first on line \(first))")
            }
            rows.append((record.line, id, record.fields.dropFirst().map { $0.trimmingCharacters(in: .whitespaces) }))
        }
        guard !rows.isEmpty else { throw .empty(path, "has a header but no items") }

        let attributeNames = Array(names.dropFirst())
        let kinds = attributeNames.indices.map { column in ColumnKind(rows.lazy.map { $0.cells[column] }) }
        var items: [CatalogueItem] = []
        items.reserveCapacity(rows.count)
        for row in rows {
            var attributes: ItemAttributes = [:]
            for (column, cell) in row.cells.enumerated() where !cell.isEmpty {
                if let value = kinds[column].value(cell) { attributes[attributeNames[column]] = value }
            }
            do throws(InputRuleViolation) {
                try attributeRules.check(attributes)
            } catch {
                throw .badLine(path, row.line, error.description)
            }
            items.append(CatalogueItem(id: row.id, attributes: attributes))
        }
        return items
    }

    /// Column names: none empty, none twice, within the attribute rules' count and name length.
    private func checkHeader(_ names: [String], line: Int, path: String) throws(ItemsFileError) {
        var columnOf: [String: Int] = [:]
        for (k, name) in names.enumerated() {
            guard !name.isEmpty else { throw .badHeader(path, line, "column \(k + 1) has no name") }
            if let first = columnOf.updateValue(k + 1, forKey: name) {
                throw .badHeader(path, line, "column name `\(name)` appears twice (columns \(first) and \(k + 1))")
            }
            guard k == 0 || name.unicodeScalars.count <= attributeRules.maxNameLength else {
                throw .badHeader(path, line, "column \(k + 1)'s name is longer than \(attributeRules.maxNameLength) characters")
            }
        }
        guard names.count - 1 <= attributeRules.maxAttributes else {
            throw .badHeader(path, line, "names \(names.count - 1) attribute columns; at most \(attributeRules.maxAttributes) are allowed")
        }
    }
}

/// What a column's values become: lists, numbers or strings, chosen from all of them.
private enum ColumnKind {
    case strings, number, string

    init(_ cells: some Sequence<String>) {
        var numeric = true
        for cell in cells {
            if cell.contains("|") {
                self = .strings
                return
            }
            if numeric, !cell.isEmpty, !(Double(cell)?.isFinite ?? false) { numeric = false }
        }
        self = numeric ? .number : .string
    }

    /// The value of a non-empty cell; nil for a list with no pieces.
    func value(_ cell: String) -> AttributeValue? {
        switch self {
        case .string: return .string(cell)
        case .number: return .number(Double(cell)!)
        case .strings:
            let pieces = cell.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            return pieces.isEmpty ? nil : .strings(pieces)
        }
    }
}

/// RFC 4180 records of a text, one at a time, with the line each starts on. A quoted value may
/// span lines; a quote inside an unquoted value is kept as it is. O(text length) in all.
struct CSVRecordReader {
    private let bytes: [UInt8]
    private var at = 0
    private var line = 1

    init(_ text: String) {
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        self.bytes = bytes
    }

    /// The next record that is not blank (a line of nothing but spaces), nil at the end.
    /// - Throws: ``ItemsFileError`` for a quote never closed, or text after a closing quote.
    mutating func next(path: String) throws(ItemsFileError) -> (line: Int, fields: [String])? {
        while at < bytes.count {
            let start = line
            let fields = try record(path: path)
            if fields.count == 1, fields[0].allSatisfy({ $0 == " " }) { continue }
            return (start, fields)
        }
        return nil
    }

    /// Reads one record and its line end. Splitting bytes at ASCII `,` `"` and line ends keeps
    /// UTF-8 sequences whole, as no byte of a multi-byte sequence is ASCII.
    private mutating func record(path: String) throws(ItemsFileError) -> [String] {
        let comma = UInt8(ascii: ","), quote = UInt8(ascii: "\""), cr = UInt8(ascii: "\r"), lf = UInt8(ascii: "\n")
        let start = line
        var fields: [String] = []
        var field: [UInt8] = []
        while true {
            if at < bytes.count, bytes[at] == quote {
                // A quoted value: up to the quote that is not doubled.
                at += 1
                while true {
                    guard at < bytes.count else {
                        throw .badLine(path, start, "a quoted value is never closed (a quote inside a quoted value is written twice: \"\")")
                    }
                    let b = bytes[at]
                    at += 1
                    if b == quote {
                        if at < bytes.count, bytes[at] == quote {
                            field.append(quote)
                            at += 1
                        } else {
                            break
                        }
                    } else {
                        if b == lf { line += 1 }
                        field.append(b)
                    }
                }
                guard at == bytes.count || bytes[at] == comma || bytes[at] == lf
                    || (bytes[at] == cr && (at + 1 == bytes.count || bytes[at + 1] == lf))
                else {
                    throw .badLine(path, line, "a quoted value must be followed by a comma or the line's end")
                }
            } else {
                while at < bytes.count, bytes[at] != comma, bytes[at] != lf {
                    field.append(bytes[at])
                    at += 1
                }
                if field.last == cr, at == bytes.count || bytes[at] == lf { field.removeLast() }
            }
            fields.append(String(decoding: field, as: UTF8.self))
            field.removeAll(keepingCapacity: true)
            if at < bytes.count, bytes[at] == comma {
                at += 1
                continue
            }
            if at < bytes.count, bytes[at] == cr { at += 1 }
            if at < bytes.count, bytes[at] == lf {
                at += 1
                line += 1
            }
            return fields
        }
    }
}

/// Why an items file could not be read. Every message names the file and, for a bad line, its
/// number (the header is line 1), and says what is wrong.
public struct ItemsFileError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable { case unreadable, empty, badHeader, badLine }
    public let code: Code
    public let description: String

    static func unreadable(_ path: String, _ reason: String) -> Self {
        .init(code: .unreadable, description: "cannot read items file \(path): \(reason)")
    }
    static func empty(_ path: String, _ reason: String) -> Self {
        .init(code: .empty, description: "items file \(path) \(reason): expected a header such as movieId,title,genres (the item id first) and one item a line")
    }
    static func badHeader(_ path: String, _ line: Int, _ reason: String) -> Self {
        .init(code: .badHeader, description: "\(path) line \(line): header: \(reason)")
    }
    static func badLine(_ path: String, _ line: Int, _ reason: String) -> Self {
        .init(code: .badLine, description: "\(path) line \(line): \(reason)")
    }
}
