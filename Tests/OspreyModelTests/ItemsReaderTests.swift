import Foundation
import Testing
@testable import OspreyModel

struct ItemsReaderTests {
    func parse(_ text: String) throws -> [CatalogueItem] {
        try ItemsReader().parse(Data(text.utf8), path: "items.csv")
    }

    /// MovieLens `movies.csv` as it is: quoted titles with commas and doubled quotes, genres
    /// joined with `|`, and `(no genres listed)`.
    @Test func movieLensMovies() throws {
        let text = #"""
            movieId,title,genres
            1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
            11,"American President, The (1995)",Comedy|Drama|Romance
            1225,Amadeus (1984),Drama
            2739,"Color Purple, The (1985)",Drama
            4725,"""Great Performances"" Cats (1998)",Musical
            176275,Satanic (2016),(no genres listed)

            """#
        let items = try parse(text)
        #expect(items.map(\.id) == ["1", "11", "1225", "2739", "4725", "176275"])
        #expect(items[0].attributes == ["title": .string("Toy Story (1995)"),
                                        "genres": .strings(["Adventure", "Animation", "Children", "Comedy", "Fantasy"])])
        #expect(items[1].attributes["title"] == .string("American President, The (1995)"))
        #expect(items[1].attributes["genres"] == .strings(["Comedy", "Drama", "Romance"]))
        // One genre is a list of one in a multi-valued column.
        #expect(items[2].attributes["genres"] == .strings(["Drama"]))
        #expect(items[4].attributes["title"] == .string("\"Great Performances\" Cats (1998)"))
        #expect(items[5].attributes["genres"] == .strings(["(no genres listed)"]))
        #expect(items.allSatisfy { !$0.hidden })
    }

    @Test func numericAndCategoricalColumns() throws {
        let items = try parse("item,year,rating,studio,code\na,1995,4.5,Pixar,12\nb,2001,-1e2,Ghibli,x7\nc,1987,0,7,3\n")
        #expect(items[0].attributes == ["year": .number(1995), "rating": .number(4.5), "studio": .string("Pixar"), "code": .string("12")])
        #expect(items[1].attributes["rating"] == .number(-100))
        // A number in a column of words stays a string; one word makes the whole column strings.
        #expect(items[2].attributes["studio"] == .string("7"))
        #expect(items[2].attributes["code"] == .string("3"))
        // A column holding NaN or an infinity is not numeric.
        let odd = try parse("item,x\na,1\nb,inf\n")
        #expect(odd.map { $0.attributes["x"] } == [.string("1"), .string("inf")])
    }

    @Test func emptyCellsMeanTheAttributeIsMissing() throws {
        let items = try parse("item,year,tags,title\na,,x|y,\nb,2000,,Up\nc,1999, | ,\" \"\n")
        #expect(items[0].attributes == ["tags": .strings(["x", "y"])])
        #expect(items[1].attributes == ["year": .number(2000), "title": .string("Up")])
        // Pieces are trimmed and empty ones dropped; a list of none and a blank value are missing.
        #expect(items[2].attributes == ["year": .number(1999)])
        let spaced = try parse("item,tags\na, x |y||  z \n")
        #expect(spaced[0].attributes["tags"] == .strings(["x", "y", "z"]))
    }

    @Test func crlfBOMAndBlankLines() throws {
        let text = "\u{FEFF}movieId,title,genres\r\n1,\"Heat, The\",Action|Crime\r\n\r\n2,Up,Animation\r\n"
        let items = try parse(text)
        #expect(items.map(\.id) == ["1", "2"])
        #expect(items[0].attributes["title"] == .string("Heat, The"))
        #expect(items[1].attributes == ["title": .string("Up"), "genres": .strings(["Animation"])])
        // The BOM is not part of the first column's name: that would make `movieId` a new name.
        let bom = try parse("\u{FEFF}item,item2\na,1\n")
        #expect(bom[0].attributes == ["item2": .number(1)])
        // No line end at the end of the file; a quoted value across lines keeps its line break.
        let multi = try parse("item,note\na,\"two\nlines\"\nb,x")
        #expect(multi.map { $0.attributes["note"] } == [.string("two\nlines"), .string("x")])
    }

    @Test func badLinesAreReportedByNumber() throws {
        let long = String(repeating: "é", count: 257)
        let cases: [(String, String)] = [
            ("item,title\na,x\na,y\n", "line 3: item id `a` appears twice (first on line 2)"),
            ("item,title,genres\na,x,y\nb,Heat, The,Crime\n", "line 3: expected 3 fields as the header names, found 4 (quote a value that contains a comma)"),
            ("item,title,genres\na,x,y\n\nb,x\n", "line 4: expected 3 fields as the header names, found 2"),
            ("item,title\na,x\nb,\"Heat, The\nc,y\n", "line 3: a quoted value is never closed"),
            ("item,title\na,\"Heat\" x\n", "line 2: a quoted value must be followed by a comma or the line's end"),
            ("item,title\na,x\n,y\n", "line 3: item id must not be empty"),
            ("item,title\n\(long),y\n", "line 2: item id must be at most 256 characters long"),
            ("item,title\na,x\nb,\(String(repeating: "w", count: 1025))\n", "line 3: attributes.title must be at most 1024 characters long"),
            ("item,title\na,\"x\u{0}\"\n", "line 2: attributes.title must not contain NUL (U+0000)"),
            ("item,note\na,\"one\ntwo\"\nb,x\nb,y\n", "line 5: item id `b` appears twice (first on line 4)"),
        ]
        for (text, message) in cases {
            let error = #expect(throws: ItemsFileError.self) { try parse(text) }
            #expect(error?.code == .badLine)
            #expect(error?.description.hasPrefix("items.csv " + message) == true, "\(error?.description ?? "") should start with \(message)")
        }
        let tags = (0...64).map { "t\($0)" }.joined(separator: "|")
        let list = #expect(throws: ItemsFileError.self) { try parse("item,tags\na,x|y\nb,\(tags)\n") }
        #expect(list?.description == "items.csv line 3: attributes.tags has 65 values; at most 64 are allowed")
    }

    @Test func badHeadersAndEmptyFiles() throws {
        let headers: [(String, String)] = [
            ("item,title,,genres\na,b,c,d\n", "items.csv line 1: header: column 3 has no name"),
            ("item,title,genres,title\na,b,c,d\n", "items.csv line 1: header: column name `title` appears twice (columns 2 and 4)"),
            ("item,item\na,b\n", "items.csv line 1: header: column name `item` appears twice (columns 1 and 2)"),
            ("item," + (0..<65).map { "c\($0)" }.joined(separator: ",") + "\n", "items.csv line 1: header: names 65 attribute columns; at most 64 are allowed"),
        ]
        for (text, message) in headers {
            let error = #expect(throws: ItemsFileError.self) { try parse(text) }
            #expect(error?.code == .badHeader)
            #expect(error?.description == message)
        }
        for (text, reason) in [("", "has no header"), ("\u{FEFF}\n  \n", "has no header"), ("movieId,title,genres\n", "has a header but no items"),
                               ("movieId,title,genres\r\n\r\n", "has a header but no items")] {
            let error = #expect(throws: ItemsFileError.self) { try parse(text) }
            #expect(error?.code == .empty)
            #expect(error?.description.hasPrefix("items file items.csv \(reason):") == true, "\(error?.description ?? "")")
        }
        let missing = #expect(throws: ItemsFileError.self) { try ItemsReader().read(path: "/nonexistent/movies.csv") }
        #expect(missing?.code == .unreadable)
        let binary = #expect(throws: ItemsFileError.self) { try ItemsReader().parse(Data([0x69, 0x2C, 0xFF, 0xFE, 0x0A]), path: "b") }
        #expect(binary?.description == "cannot read items file b: not UTF-8 text")
    }

    /// The rules are the reader's: a stricter id length refuses what the default accepts.
    @Test func rulesAreTheReaders() throws {
        let strict = ItemsReader(rules: InputRules(maxIdentifierLength: 3), attributeRules: AttributeRules(maxValueLength: 4))
        #expect(try strict.parse(text: "item,t\nabc,abcd\n").map(\.id) == ["abc"])
        let id = #expect(throws: ItemsFileError.self) { try strict.parse(text: "item,t\nabcd,a\n", path: "s") }
        #expect(id?.description == "s line 2: item id must be at most 3 characters long")
        let value = #expect(throws: ItemsFileError.self) { try strict.parse(text: "item,t\nabc,a\nb,abcde\n", path: "s") }
        #expect(value?.description == "s line 3: attributes.t must be at most 4 characters long")
    }
}
