/// Ratings with string ids mapped to dense rows, in parallel arrays (the layout ALS reads).
struct IndexedRatings: Sendable {
    struct Columns: Sendable {
        var users: [Int32] = []
        var items: [Int32] = []
        var labels: [Float] = []
    }

    let userIDs: [String]
    let itemIDs: [String]
    let users: [Int32]
    let items: [Int32]
    let labels: [Float]
    let timestamps: [Double]

    /// Maps ids to rows in order of first appearance. O(n).
    init(_ ratings: [Rating]) {
        var userRow: [String: Int32] = [:]
        var itemRow: [String: Int32] = [:]
        var userIDs: [String] = []
        var itemIDs: [String] = []
        var users = [Int32](), items = [Int32](), labels = [Float](), times = [Double]()
        users.reserveCapacity(ratings.count)
        items.reserveCapacity(ratings.count)
        labels.reserveCapacity(ratings.count)
        times.reserveCapacity(ratings.count)
        for r in ratings {
            let u: Int32
            if let row = userRow[r.uid] { u = row } else {
                u = Int32(userIDs.count)
                userRow[r.uid] = u
                userIDs.append(r.uid)
            }
            let i: Int32
            if let row = itemRow[r.item] { i = row } else {
                i = Int32(itemIDs.count)
                itemRow[r.item] = i
                itemIDs.append(r.item)
            }
            users.append(u)
            items.append(i)
            labels.append(r.label)
            times.append(r.timestamp)
        }
        self.userIDs = userIDs
        self.itemIDs = itemIDs
        self.users = users
        self.items = items
        self.labels = labels
        self.timestamps = times
    }

    /// The median number of ratings per user. O(n + users log users).
    var medianRatingsPerUser: Int {
        var counts = [Int](repeating: 0, count: userIDs.count)
        for u in users { counts[Int(u)] += 1 }
        counts.sort()
        return counts.isEmpty ? 1 : max(1, counts[counts.count / 2])
    }

    /// Holds out each user's latest `share` of ratings (at least one for users with 5 or more).
    /// O(n log n).
    func splitByTime(holdOut share: Double) -> (train: Columns, validation: Columns) {
        var byUser = [[Int]](repeating: [], count: userIDs.count)
        for k in 0..<users.count { byUser[Int(users[k])].append(k) }
        var train = Columns(), validation = Columns()
        for var entries in byUser {
            entries.sort { (timestamps[$0], $0) < (timestamps[$1], $1) }
            let held = entries.count >= 5 ? max(1, Int((Double(entries.count) * share).rounded())) : 0
            for (n, k) in entries.enumerated() {
                if n >= entries.count - held {
                    validation.users.append(users[k]); validation.items.append(items[k]); validation.labels.append(labels[k])
                } else {
                    train.users.append(users[k]); train.items.append(items[k]); train.labels.append(labels[k])
                }
            }
        }
        return (train, validation)
    }
}
