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
            ("uid,item,label\na,b,4\na,b,NaN\n", "line 3: label `NaN` is not a finite number"),
            ("uid,item,label\na,b,4\na,b,x\n", "line 3: label `x` is not a finite number"),
            ("uid,item,label\na,,4\n", "line 2: empty item id"),
            ("1::2::3::later\n", "line 1: timestamp `later` is not a number"),
        ]
        for (text, message) in cases {
            let error = #expect(throws: RatingsFileError.self) { try parse(text) }
            #expect(error?.code == .badLine)
            #expect(error?.description.contains(message) == true, "\(error?.description ?? "") should contain \(message)")
        }
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
