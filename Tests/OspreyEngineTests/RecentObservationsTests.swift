import OspreyModel
import Testing
@testable import OspreyEngine

/// What a catch-up records of each user, read back as the log would give it to a rebuild.
struct RecentObservationsTests {
    /// Read by user and range, the recorded observations are the log's, in log order; none from
    /// before the window (the log has them) or after it closes; an erased user's are gone.
    @Test func recordedObservationsReadBackByUserAndRange() {
        let recent = RecentObservations()
        let all = (Int64(1)...300).map { seq in
            LoggedObservation(seq: seq, observation: Observation(model: "m", uid: "u\(seq * 7919 % 13)", item: "i\(seq % 7)",
                                                                 label: Float(seq) / 4, time: Double(seq) * 10))
        }
        func expected(_ uid: String, _ range: Range<Int64>) -> [RecentObservations.Recorded] {
            all.filter { $0.observation.uid == uid && range.contains($0.seq) }.map {
                .init(seq: $0.seq, item: $0.observation.item, label: $0.observation.label, time: $0.observation.time)
            }
        }
        recent.record(all[9])
        #expect(recent.count == 0 && recent.observations(of: all[9].observation.uid, in: 5..<20) == nil, "closed: nothing kept")

        recent.open(from: 5)
        for logged in all { recent.record(logged) }
        #expect(recent.count == 296, "sequences 1-4 are before the window")
        for u in 0..<13 {
            for range: Range<Int64> in [5..<301, 40..<120, 100..<100] {
                #expect(recent.observations(of: "u\(u)", in: range) == expected("u\(u)", range))
            }
        }
        #expect(expected("u3", 5..<301).count > 10)
        #expect(recent.observations(of: "u1", in: 4..<10) == nil, "the window starts after the range: read the log")
        #expect(recent.observations(of: "nobody", in: 5..<10) == [])

        let erased = expected("u3", 5..<301).count
        recent.forget("u3")
        #expect(recent.observations(of: "u3", in: 5..<301) == [] && recent.count == 296 - erased)
        #expect(recent.observations(of: "u4", in: 5..<301) == expected("u4", 5..<301), "the others are untouched")
        recent.close()
        #expect(recent.count == 0 && recent.observations(of: "u4", in: 5..<301) == nil)
    }
}
