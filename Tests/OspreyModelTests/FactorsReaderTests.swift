import Foundation
import Testing
@testable import OspreyModel

/// Reading factors trained elsewhere: JSON lines and CSV, files and directories of part files,
/// and errors that name the file and line.
struct FactorsReaderTests {
    func parse(_ text: String, path: String = "f.json") throws(FactorsFileError) -> ImportedFactors {
        try FactorsReader().parse(text: text, path: path)
    }

    /// The error a text gives, or nil when it parses.
    func error(_ text: String, path: String = "f.json") -> FactorsFileError? {
        do {
            _ = try parse(text, path: path)
            return nil
        } catch {
            return error
        }
    }

    /// Expects `text` to fail at `line` of `path`, with `words` in the message.
    func expectError(_ text: String, path: String = "f.json", line: Int, _ words: String...,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        guard let e = error(text, path: path) else {
            Issue.record("parsed without an error", sourceLocation: sourceLocation)
            return
        }
        #expect(e.description.hasPrefix("\(path) line \(line): "), "\(e)", sourceLocation: sourceLocation)
        for w in words { #expect(e.description.contains(w), "\(e) lacks `\(w)`", sourceLocation: sourceLocation) }
    }

    /// A fresh temporary directory.
    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "osprey-factors-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func jsonLinesWithStringAndIntegerIdsAndOffsets() throws {
        let f = try parse("""
            {"id": "a", "features": [1, -2.5, 0.25]}
            {"id": 17, "features": [0, 3e-2, 4], "offset": 0.5}

            {"features": [7, 8, 9], "offset": -2, "id": "c"}
            """)
        #expect(f.dimension == 3)
        #expect(f.ids == ["a", "17", "c"])
        #expect(f.vectors == [1, -2.5, 0.25, 0, 0.03, 4, 7, 8, 9])
        #expect(f.offsets == [0, 0.5, -2])
        #expect(f.vector(1) == [0, 0.03, 4])
        #expect(f.count == 3 && f.path == "f.json")
        // The feature table: rows padded to the stride, offsets kept.
        let m = f.materialized()
        #expect(m.dimension == 3 && m.catalog.row(of: "17") == 1)
        m.withFeatures(item: 2) { v, offset in
            #expect((0..<3).map { v[$0] } == [7, 8, 9])
            #expect(offset == -2)
        }
    }

    @Test func csvWithAndWithoutAnOffsetColumn() throws {
        let plain = try parse("id,f0,f1\nx,1,2\r\ny, -3 ,4.5\n\n", path: "f.csv")
        #expect(plain.dimension == 2 && plain.ids == ["x", "y"])
        #expect(plain.vectors == [1, 2, -3, 4.5])
        #expect(plain.offsets == [0, 0])
        // An `offset` column anywhere after the id is the offset, not a factor.
        let offset = try parse("item,f0,offset,f1\nx,1,0.5,2\ny,3,-1,4\n", path: "f.csv")
        #expect(offset.dimension == 2 && offset.ids == ["x", "y"])
        #expect(offset.vectors == [1, 2, 3, 4])
        #expect(offset.offsets == [0.5, -1])
        // Windows line ends and a byte order mark, in either format.
        let crlf = try parse("\u{FEFF}id,f0\r\nx,1\r\ny,2\r\n", path: "f.csv")
        #expect(crlf.ids == ["x", "y"] && crlf.vectors == [1, 2])
        let json = try parse("\u{FEFF}{\"id\": \"x\", \"features\": [1]}\r\n\r\n{\"id\": \"y\", \"features\": [2]}\r\n")
        #expect(json.ids == ["x", "y"] && json.vectors == [1, 2])
        expectError("id,f0\r\nx,1\r\ny,z\r\n", path: "f.csv", line: 3, "`f0` value `z` is not a number")
    }

    /// A directory as Spark writes it: part files in name order; `_SUCCESS`, `.crc` and hidden
    /// files are not read (their bytes would not parse).
    @Test func aDirectoryOfPartFilesInNameOrder() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func write(_ name: String, _ text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
        }
        try write("part-00001.json", "{\"id\": \"c\", \"features\": [5, 6]}\n")
        try write("part-00000.json", "{\"id\": \"a\", \"features\": [1, 2], \"offset\": 1}\n{\"id\": \"b\", \"features\": [3, 4]}\n")
        try write("_SUCCESS", "")
        try write("part-00000.json.crc", "crc garbage \u{1}\u{2}")
        try write(".part-00001.json.crc", "more garbage")
        let progress = Progress()
        let f = try FactorsReader(progress: { done, total in progress.add(done, total) }).read(path: dir)
        #expect(f.ids == ["a", "b", "c"])
        #expect(f.vectors == [1, 2, 3, 4, 5, 6])
        #expect(f.offsets == [1, 0, 0])
        #expect(f.path == dir)
        #expect(progress.last.done == progress.last.total && progress.last.total > 0)
        // A file read on its own.
        #expect(try FactorsReader().read(path: dir + "/part-00001.json").ids == ["c"])

        // An id seen in an earlier part file is named at its first place.
        try write("part-00002.json", "{\"id\": \"z\", \"features\": [0, 0]}\n{\"id\": \"b\", \"features\": [1, 1]}\n")
        #expect {
            try FactorsReader().read(path: dir)
        } throws: { error in
            let d = (error as? FactorsFileError)?.description ?? ""
            return d.hasPrefix(dir + "/part-00002.json line 2: ") && d.contains("`b` appears twice")
                && d.contains("first at \(dir)/part-00000.json line 2")
        }
        // A directory holding only markers has no rows.
        let empty = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: empty) }
        try Data().write(to: URL(fileURLWithPath: empty + "/_SUCCESS"))
        #expect(throws: FactorsFileError.self) { try FactorsReader().read(path: empty) }
        #expect(throws: FactorsFileError.self) { try FactorsReader().read(path: empty + "/missing") }
    }

    /// The progress callback's last report.
    final class Progress: @unchecked Sendable {
        private let lock = NSLock()
        private var value = (done: 0, total: 0)
        func add(_ done: Int, _ total: Int) { lock.lock(); value = (done, total); lock.unlock() }
        var last: (done: Int, total: Int) { lock.lock(); defer { lock.unlock() }; return value }
    }

    @Test func jsonErrorsNameTheFileAndLine() {
        let good = "{\"id\": \"a\", \"features\": [1, 2]}\n"
        expectError(good + "{\"id\": \"b\", \"feature\": [1, 2]}", line: 2, "unknown key `feature`")
        expectError(good + "\n{\"id\": \"b\"}", line: 3, "has no `features`")
        expectError(good + "{\"id\": \"b\", \"features\": [1, \"2\"]}", line: 2, "features[1] is not a number")
        expectError(good + "{\"id\": \"b\", \"features\": [1, true]}", line: 2, "features[1] is not a number")
        expectError(good + "{\"id\": \"b\", \"features\": 3}", line: 2, "`features` must be an array")
        expectError(good + "{\"id\": true, \"features\": [1, 2]}", line: 2, "`id` must be a string or an integer")
        expectError(good + "{\"id\": 1.5, \"features\": [1, 2]}", line: 2, "`id` must be a string or an integer")
        expectError(good + "{\"features\": [1, 2]}", line: 2, "has no `id`")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 2], \"offset\": false}", line: 2, "`offset` must be a number")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 2, 3]}", line: 2, "has 3 factors where the first row has 2")
        expectError(good + "{\"id\": \"b\", \"features\": []}", line: 2, "has 0 factors")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 2]}\n{\"id\": \"a\", \"features\": [3, 4]}", line: 3,
                    "`a` appears twice", "first at f.json line 1")
        expectError(good + "{\"id\": \"\", \"features\": [1, 2]}", line: 2, "id", "empty")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 1e39]}", line: 2, "factor 1", "not a finite 32-bit number")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 2]", line: 2, "not a JSON object")
        expectError(good + "{\"id\": \"b\", \"features\": [1, 2]}\n[1, 2]", line: 3, "not a JSON object")
    }

    @Test func csvErrorsNameTheFileAndLine() {
        let header = "id,f0,f1\nx,1,2\n"
        expectError(header + "y,1e39,2", path: "f.csv", line: 3, "factor 0", "not a finite 32-bit number")
        expectError(header + "y,1,nan", path: "f.csv", line: 3, "factor 1", "not a finite 32-bit number")
        expectError(header + "y,1,inf", path: "f.csv", line: 3, "not a finite 32-bit number")
        expectError("id,f0,offset\nx,1,1e39", path: "f.csv", line: 2, "offset", "not a finite 32-bit number")
        expectError(header + "y,1,two", path: "f.csv", line: 3, "`f1` value `two` is not a number")
        expectError(header + "y,1", path: "f.csv", line: 3, "expected 3 fields", "found 2")
        expectError(header + "\ny,1,2\nx,5,6", path: "f.csv", line: 5, "`x` appears twice", "first at f.csv line 2")
        expectError(header + ",1,2", path: "f.csv", line: 3, "id", "empty")
        expectError("x,1.0,2.0\ny,3,4\n", path: "f.csv", line: 1, "must be a header")
        expectError("id\nx\n", path: "f.csv", line: 1, "header must name the id column")
    }

    @Test func anEmptyFileHasNoRows() {
        for text in ["", "\n  \n", "id,f0,f1\n"] {
            let e = error(text, path: "empty.csv")
            #expect(e?.description == "factors empty.csv hold no rows", "\(String(describing: e))")
        }
    }
}
