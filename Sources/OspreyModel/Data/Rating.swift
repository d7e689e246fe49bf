/// One rating (or, once serving, one observation): a user's label for an item at a time.
public struct Rating: Sendable, Equatable {
    public var uid: String
    public var item: String
    public var label: Float
    /// Seconds since the epoch, or the line number when the source had no timestamp.
    public var timestamp: Double

    public init(uid: String, item: String, label: Float, timestamp: Double) {
        self.uid = uid
        self.item = item
        self.label = label
        self.timestamp = timestamp
    }
}
