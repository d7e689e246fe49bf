/// One observation as a client sends it: who (`uid`) rated or clicked what (`item`) and how
/// (`label`); `eventId`, when given, names the top-k answer it is feedback on; `observationId`,
/// when given, is the client's id for it, so a retry is acknowledged without being logged or
/// learned twice (``ObservationLog``'s idempotency). Unchecked:
/// ``Ingestor/observe(model:_:completion:)`` checks it by the ``InputRules`` (the label as sent,
/// a Double, so that its bound is exact; it is stored as a Float).
public struct Feedback: Sendable {
    public var uid: String
    public var item: String
    public var label: Double
    public var eventId: String?
    public var observationId: String?

    public init(uid: String, item: String, label: Double, eventId: String? = nil, observationId: String? = nil) {
        self.uid = uid
        self.item = item
        self.label = label
        self.eventId = eventId
        self.observationId = observationId
    }
}

/// What an observe call's answer says: the serving version, and how many of its observations
/// were already logged under their observation id (a retry: acknowledged, not logged again).
public struct Acknowledgement: Sendable, Equatable {
    public var version: Int
    public var duplicates: Int

    public init(version: Int, duplicates: Int = 0) {
        self.version = version
        self.duplicates = duplicates
    }
}
