/// Which node serves which user when several nodes share one store (Velox §6: users are
/// partitioned across nodes by uid, and each request goes to the node holding its user's
/// weights). docs/operations.md, "Partitioned serving".
///
/// A uid falls in one of ``buckets`` buckets: the CRC-32 (zlib's) of its path segment, as a
/// client sends it in `/v1/models/{model}/users/{uid}/…`, modulo the bucket count. That is what
/// HAProxy computes with `path,field(6,/),crc32,mod(N)`, so the proxy and the nodes agree on the
/// bucket without sharing any state. Each bucket ranks every node by rendezvous hashing (highest
/// score of hash(node, bucket) first); its owner is the first *live* node of its ranking. So a
/// node that leaves moves only its own buckets (each to the next node of that bucket's ranking)
/// and one that joins takes only the buckets it ranks first in. `osprey router-config` writes
/// each bucket's ranking as HAProxy `use-server` rules, in order: HAProxy skips a rule whose
/// server its health checks find down, so it picks the first live node of the ranking, as the
/// nodes do.
public struct PartitionRing: Sendable, Equatable {
    /// The node names, as the ring ranks them (their order here does not matter).
    public let nodes: [String]
    /// The number of buckets.
    public let buckets: Int

    /// The default bucket count: enough that three to ten nodes get even shares (each bucket's
    /// owner is a coin toss among the live nodes), few enough for a short HAProxy configuration.
    public static let defaultBuckets = 256

    /// A ring over `nodes` (distinct, non-empty names) with `buckets` buckets (1...65,536).
    public init(nodes: [String], buckets: Int = PartitionRing.defaultBuckets) {
        precondition(!nodes.isEmpty && Set(nodes).count == nodes.count, "a ring needs distinct nodes")
        precondition((1...65_536).contains(buckets), "buckets must be in 1...65536")
        self.nodes = nodes
        self.buckets = buckets
    }

    /// The bucket of a uid's path segment as sent (percent-encoded). O(length).
    public func bucket(pathSegment: some Collection<UInt8>) -> Int {
        Int(CRC32.checksum(pathSegment) % UInt32(buckets))
    }

    /// The bucket of a uid, percent-encoded as ``pathSegment(uid:)`` encodes it: the checksum
    /// runs over the encoded bytes as they are made, without building the segment (a cluster
    /// node computes this on every request). O(length).
    public func bucket(uid: String) -> Int {
        var crc = CRC32()
        for byte in uid.utf8 {
            if Self.isUnreserved(byte) {
                crc.update(byte)
            } else {
                crc.update(UInt8(ascii: "%"))
                crc.update(Self.hexDigits[Int(byte >> 4)])
                crc.update(Self.hexDigits[Int(byte & 0x0F)])
            }
        }
        return Int(crc.value % UInt32(buckets))
    }

    /// RFC 3986's unreserved characters: letters, digits, `-`, `.`, `_`, `~`.
    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            true
        default:
            false
        }
    }

    /// Upper-case hex digits, as percent-encoding writes them.
    static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// Every node, the bucket's preferred owner first. O(nodes · log nodes).
    public func ranking(bucket: Int) -> [String] {
        nodes.map { ($0, Self.score(node: $0, bucket: bucket)) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
            .map(\.0)
    }

    /// The node serving `uid` while the nodes in `live` are up: the first live node of its
    /// bucket's ranking, or nil when none is. O(nodes · log nodes).
    public func owner(uid: String, live: Set<String>) -> String? {
        ranking(bucket: bucket(uid: uid)).first { live.contains($0) }
    }

    /// A uid as a path segment: RFC 3986's unreserved characters as they are, every other byte
    /// of its UTF-8 as `%XX` (upper-case hex). Clients that encode uids this way reach the
    /// owner through the proxy at once; another encoding of the same uid may land on another
    /// node, which answers 421 with the owner's address.
    public static func pathSegment(uid: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(uid.utf8.count)
        for byte in uid.utf8 {
            if isUnreserved(byte) {
                out.append(byte)
            } else {
                out += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The rendezvous score of a node for a bucket: a 64-bit mix of the node's name (FNV-1a)
    /// and the bucket number (SplitMix64's finalizer). Fixed forever: a change would move every
    /// user of a running cluster.
    static func score(node: String, bucket: Int) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in node.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        var z = h ^ (UInt64(bucket) &* 0x9E37_79B9_7F4A_7C15)
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// zlib's CRC-32 (the polynomial 0xEDB88320, reflected), which HAProxy's `crc32` converter
/// computes when given no argument.
struct CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// The running state, before the final inversion.
    private var state: UInt32 = 0xFFFF_FFFF

    /// Adds one byte. O(1).
    mutating func update(_ byte: UInt8) {
        state = Self.table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
    }

    /// The checksum of the bytes added so far.
    var value: UInt32 { state ^ 0xFFFF_FFFF }

    /// The checksum of `bytes`. O(count).
    static func checksum(_ bytes: some Collection<UInt8>) -> UInt32 {
        var c = CRC32()
        for byte in bytes { c.update(byte) }
        return c.value
    }
}
