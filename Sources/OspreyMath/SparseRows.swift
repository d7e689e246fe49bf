/// A compressed sparse row (CSR) view of ratings: for each row (a user, or an item), the column
/// indices and labels of its ratings. Built once per training run in O(n + rows).
public struct SparseRows: Sendable {
    /// The number of rows.
    public let rowCount: Int
    /// `offsets[r]..<offsets[r+1]` is row r's range in ``columns`` and ``labels``.
    public let offsets: [Int]
    /// Column index of each entry.
    public let columns: [Int32]
    /// Label of each entry.
    public let labels: [Float]

    /// Groups `(rows[i], columns[i], labels[i])` triples by row (counting sort). O(n + rowCount).
    public init(rowCount: Int, rows: [Int32], columns: [Int32], labels: [Float]) {
        precondition(rows.count == columns.count && rows.count == labels.count)
        var offsets = [Int](repeating: 0, count: rowCount + 1)
        for r in rows { offsets[Int(r) + 1] += 1 }
        for r in 0..<rowCount { offsets[r + 1] += offsets[r] }
        var next = offsets
        var cols = [Int32](repeating: 0, count: rows.count)
        var labs = [Float](repeating: 0, count: rows.count)
        for i in 0..<rows.count {
            let r = Int(rows[i])
            cols[next[r]] = columns[i]
            labs[next[r]] = labels[i]
            next[r] += 1
        }
        self.rowCount = rowCount
        self.offsets = offsets
        self.columns = cols
        self.labels = labs
    }

    /// The number of entries in row `r`. O(1).
    @inlinable public func count(ofRow r: Int) -> Int { offsets[r + 1] - offsets[r] }
}
