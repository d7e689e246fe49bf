/// One observation as a client sends it: who (`uid`) rated or clicked what (`item`) and how
/// (`label`); `eventId`, when given, names the top-k answer it is feedback on. Unchecked:
/// ``Ingestor/observe(model:_:completion:)`` checks it by the ``InputRules`` (the label as sent,
/// a Double, so that its bound is exact; it is stored as a Float).
public struct Feedback: Sendable {
    public var uid: String
    public var item: String
    public var label: Double
    public var eventId: String?

    public init(uid: String, item: String, label: Double, eventId: String? = nil) {
        self.uid = uid
        self.item = item
        self.label = label
        self.eventId = eventId
    }
}
