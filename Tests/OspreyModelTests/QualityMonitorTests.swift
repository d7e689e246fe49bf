import Testing
@testable import OspreyModel

struct QualityMonitorTests {
    @Test func baselineThenStaleWhenTheLossRises() {
        var m = QualityMonitor(configuration: .init(window: 4, threshold: 1.5))
        var flips: [Bool] = []
        for _ in 0..<3 { flips.append(m.record(1)) }
        #expect(m.windowedLoss == nil && m.baseline == nil)
        flips.append(m.record(1))
        #expect(m.baseline == 1 && m.windowedLoss == 1)
        // Noise around the baseline does not trip it.
        for x in [1.2, 0.8, 1.3, 0.9] { flips.append(m.record(x)) }
        #expect(!m.stale && !flips.contains(true))
        // A sustained rise does, once: the window mean (1.3 + 0.9 + 3 + 3) / 4 = 2.05 > 1.5.
        let first = m.record(3)
        let second = m.record(3)
        let third = m.record(3)
        #expect(!first && second && !third && m.stale)
        #expect(m.scored == 11)
        // Non-finite losses are ignored.
        let ignored = m.record(.nan)
        #expect(!ignored && m.scored == 11)
    }
}
