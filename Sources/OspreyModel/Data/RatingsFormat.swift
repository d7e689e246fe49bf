/// The ratings file formats Osprey reads (``RatingsReader`` detects which from the first line).
public enum RatingsFormat: String, Sendable, Equatable {
    /// MovieLens 100k `u.data`: `user<TAB>item<TAB>rating<TAB>timestamp`.
    case movieLensTab = "movielens-tab"
    /// MovieLens 1M/10M `ratings.dat`: `user::item::rating::timestamp`.
    case movieLensDat = "movielens-dat"
    /// CSV with a header naming the columns (`userId,movieId,rating,timestamp` or
    /// `uid,item,label[,timestamp]`).
    case csv

    /// Guesses the format from the first non-empty line. O(line length).
    static func detect(firstLine: Substring) -> RatingsFormat? {
        if firstLine.contains("::") { return .movieLensDat }
        if firstLine.contains("\t") { return .movieLensTab }
        if firstLine.contains(",") { return .csv }
        return nil
    }
}

/// Why a ratings file could not be read. Every message names the file and, for a bad line, its
/// number, and says how to fix it.
public struct RatingsFileError: Error, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable { case unreadable, empty, unknownFormat, badHeader, badLine }
    public let code: Code
    public let description: String

    static func unreadable(_ path: String, _ reason: String) -> Self {
        .init(code: .unreadable, description: "cannot read ratings file \(path): \(reason)")
    }
    static func empty(_ path: String) -> Self {
        .init(code: .empty, description: "ratings file \(path) has no ratings")
    }
    static func unknownFormat(_ path: String) -> Self {
        .init(code: .unknownFormat, description: "cannot tell the format of \(path): expected MovieLens u.data (tab-separated), ratings.dat (`::`-separated) or CSV with a header such as userId,movieId,rating,timestamp")
    }
    static func badHeader(_ path: String, _ header: String) -> Self {
        .init(code: .badHeader, description: "\(path) line 1: CSV header `\(header)` must name a user column (userId or uid), an item column (movieId or item) and a label column (rating or label)")
    }
    static func badLine(_ path: String, _ line: Int, _ reason: String) -> Self {
        .init(code: .badLine, description: "\(path) line \(line): \(reason)")
    }
}
