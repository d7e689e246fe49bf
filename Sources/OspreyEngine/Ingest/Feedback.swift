/// One observation as a client sends it: who (`uid`) rated or clicked what (`item`) and how
/// (`label`); `eventId`, when given, names the top-k answer it is feedback on.
public struct Feedback: Sendable {
    public var uid: String
    public var item: String
    public var label: Float
    public var eventId: String?

    public init(uid: String, item: String, label: Float, eventId: String? = nil) {
        self.uid = uid
        self.item = item
        self.label = label
        self.eventId = eventId
    }
}
