import Testing
@testable import OspreyEngine

/// The partition ring: zlib's CRC-32 (what HAProxy's `crc32` computes), the canonical path
/// segment of a uid, rendezvous rankings that move only what they must, and even shares.
struct PartitionRingTests {
    @Test func theChecksumIsZlibsCRC32() {
        // The standard check value of CRC-32, and values zlib.crc32 gives.
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([UInt8]()) == 0)
        #expect(CRC32.checksum(Array("u1".utf8)) == 0x424F_9F76)
    }

    @Test func aUidIsPercentEncodedAsAClientWould() {
        #expect(PartitionRing.pathSegment(uid: "u1") == "u1")
        #expect(PartitionRing.pathSegment(uid: "A-z_0.9~") == "A-z_0.9~")
        #expect(PartitionRing.pathSegment(uid: "a b/é") == "a%20b%2F%C3%A9")
        let ring = PartitionRing(nodes: ["n1"], buckets: 256)
        #expect(ring.bucket(uid: "a b") == ring.bucket(pathSegment: Array("a%20b".utf8)))
        #expect(ring.bucket(uid: "a b/é") == ring.bucket(pathSegment: Array("a%20b%2F%C3%A9".utf8)), "encoded while it is checksummed")
        #expect(ring.bucket(uid: "u1") == Int(0x424F_9F76 % 256))
    }

    @Test func eachBucketRanksEveryNodeOnceTheSameWayWhateverTheirOrder() {
        let a = PartitionRing(nodes: ["n1", "n2", "n3"]), b = PartitionRing(nodes: ["n3", "n1", "n2"])
        for bucket in 0..<a.buckets {
            #expect(a.ranking(bucket: bucket).sorted() == ["n1", "n2", "n3"])
            #expect(a.ranking(bucket: bucket) == b.ranking(bucket: bucket))
        }
    }

    /// A node that leaves hands each of its buckets to the next node of that bucket's ranking;
    /// every other bucket keeps its owner. One that joins takes only the buckets it ranks first.
    @Test func aLeavingOrJoiningNodeMovesOnlyItsOwnBuckets() {
        let three = PartitionRing(nodes: ["n1", "n2", "n3"]), four = PartitionRing(nodes: ["n1", "n2", "n3", "n4"])
        let all: Set = ["n1", "n2", "n3"]
        var moved = 0
        for uid in (0..<3_000).map({ "user-\($0)" }) {
            let before = three.owner(uid: uid, live: all)!
            let after = three.owner(uid: uid, live: all.subtracting(["n2"]))!
            if before == "n2" {
                moved += 1
                #expect(after == three.ranking(bucket: three.bucket(uid: uid)).filter { $0 != "n2" }.first)
            } else {
                #expect(after == before, "\(uid) moved from \(before) though n2 left")
            }
            let joined = four.owner(uid: uid, live: all.union(["n4"]))!
            #expect(joined == before || joined == "n4", "\(uid) moved from \(before) to \(joined), not to the new node")
        }
        #expect(moved > 0)
        #expect(three.owner(uid: "u1", live: []) == nil)
    }

    /// Three nodes over 256 buckets: each bucket's owner is close to a fair three-way draw, so
    /// each node's share is 85 ± 9 buckets (one standard deviation); the bound is four.
    @Test func sharesAreEven() {
        let ring = PartitionRing(nodes: ["osprey-1", "osprey-2", "osprey-3"])
        var owned: [String: Int] = [:]
        for bucket in 0..<ring.buckets { owned[ring.ranking(bucket: bucket)[0], default: 0] += 1 }
        #expect(owned.count == 3)
        for (node, count) in owned { #expect((50...121).contains(count), "\(node) owns \(count) of 256 buckets") }
    }
}
