import Foundation
import Testing
@testable import OspreyModel

struct RatingsReaderTests {
    func parse(_ text: String) throws -> (ratings: [Rating], format: RatingsFormat) {
        try RatingsReader().parse(Data(text.utf8), path: "test.data")
    }

    @Test func movieLensTab() throws {
        let r = try parse("196\t242\t3\t881250949\n186\t302\t3.5\t891717742\n")
        #expect(r.format == .movieLensTab)
        #expect(r.ratings == [Rating(uid: "196", item: "242", label: 3, timestamp: 881250949),
                              Rating(uid: "186", item: "302", label: 3.5, timestamp: 891717742)])
    }

    @Test func movieLensDat() throws {
        let r = try parse("1::1193::5::978300760\r\n1::661::3::978302109\r\n")
        #expect(r.format == .movieLensDat)
        #expect(r.ratings.map(\.item) == ["1193", "661"])
        #expect(r.ratings[1].timestamp == 978302109)
    }

    @Test func csvWithMovieLensHeader() throws {
        let r = try parse("userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
        #expect(r.format == .csv)
        #expect(r.ratings == [Rating(uid: "1", item: "31", label: 2.5, timestamp: 1260759144)])
    }

    @Test func csvWithOspreyHeaderAndNoTimestamp() throws {
        let r = try parse("item,uid,label\nbook,alice,4\n\nfilm,bob,1\n")
        #expect(r.ratings.map(\.uid) == ["alice", "bob"])
        #expect(r.ratings.map(\.item) == ["book", "film"])
        // No timestamp column: the line number keeps the file's order.
        #expect(r.ratings.map(\.timestamp) == [2, 4])
    }

    @Test func badLinesAreReportedByNumber() throws {
        let cases: [(String, String)] = [
            ("1\t2\t3\t4\n1\t2\n", "line 2: expected at least 3 fields"),
            ("uid,item,label\na,b,4\na,b,NaN\n", "line 3: label must be a number from -1000000 to 1000000, got nan"),
            ("uid,item,label\na,b,4\na,b,x\n", "line 3: label must be a number, got `x`"),
            ("uid,item,label\na,,4\n", "line 2: item id must not be empty"),
            ("1::2::3::later\n", "line 1: timestamp `later` is not a number"),
        ]
        for (text, message) in cases {
            let error = #expect(throws: RatingsFileError.self) { try parse(text) }
            #expect(error?.code == .badLine)
            #expect(error?.description.contains(message) == true, "\(error?.description ?? "") should contain \(message)")
        }
    }

    /// The ids and labels of a training file follow the rules the server applies to
    /// observations (``InputRules``), and a line that breaks them is named.
    @Test func idsAndLabelsFollowTheServersRules() throws {
        let long = String(repeating: "é", count: 257)
        let cases: [(String, String)] = [
            ("uid,item,label\na,b,4\na,b,1000001\n", "line 3: label must be a number from -1000000 to 1000000, got 1000001"),
            ("uid,item,label\na,b,-1e7\n", "line 2: label must be a number from -1000000 to 1000000, got -10000000"),
            ("uid,item,label\na,b,inf\n", "line 2: label must be a number from -1000000 to 1000000, got inf"),
            ("1\t2\t1e39\t4\n", "line 1: label must be a number from -1000000 to 1000000, got 1e+39"),
            ("uid,item,label\na,b,4\na\u{0}x,b,4\n", "line 3: user id must not contain NUL (U+0000)"),
            ("1::2\u{0}::3::4\n", "line 1: item id must not contain NUL (U+0000)"),
            ("uid,item,label\n\(long),b,4\n", "line 2: user id must be at most 256 characters long"),
            ("uid,item,label\na,\(long),4\n", "line 2: item id must be at most 256 characters long"),
            ("uid,item,label\n ,b,4\n", "line 2: user id must not be empty"),
        ]
        for (text, message) in cases {
            let error = #expect(throws: RatingsFileError.self) { try parse(text) }
            #expect(error?.code == .badLine)
            #expect(error?.description == "test.data " + message, "\(error?.description ?? "") should be \(message)")
        }
        // At the limits: 256 characters, ±1e6.
        let edge = try parse("uid,item,label\n\(String(repeating: "é", count: 256)),b,1000000\nc,d,-1000000\n")
        #expect(edge.ratings.map(\.label) == [1_000_000, -1_000_000])
        // Another limit.
        let loose = RatingsReader(rules: InputRules(maxIdentifierLength: 4, maxAbsLabel: 1e7))
        #expect(try loose.parse(Data("uid,item,label\nabcd,b,-1e7\n".utf8), path: "t").ratings.map(\.label) == [-1e7])
        #expect(throws: RatingsFileError.self) { try loose.parse(Data("uid,item,label\nabcde,b,1\n".utf8), path: "t") }
    }

    @Test func unusableFiles() {
        #expect(throws: RatingsFileError.self) { try parse("") }
        #expect((try? parse("just words here\n")) == nil)
        let header = #expect(throws: RatingsFileError.self) { try parse("a,b,c\n1,2,3\n") }
        #expect(header?.code == .badHeader)
        let missing = #expect(throws: RatingsFileError.self) { try RatingsReader().read(path: "/nonexistent/ratings.csv") }
        #expect(missing?.code == .unreadable)
    }
}
