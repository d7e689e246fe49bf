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

    @Test func theValidationSampleIsAFixedShareChosenBySequence() {
        let c = QualityMonitor.Configuration(validationFraction: 0.02)
        let held = (1...200_000).filter { c.holdsOut(seq: Int64($0)) }
        #expect(abs(Double(held.count) / 200_000 - 0.02) < 0.002)
        #expect(held == (1...200_000).filter { c.holdsOut(seq: Int64($0)) }, "the same sequence numbers every time")
        let none = QualityMonitor.Configuration(validationFraction: 0)
        #expect(!(1...10_000).contains { none.holdsOut(seq: Int64($0)) })
    }

    @Test func validationLossIsTheMeanOfTheLatestWindow() {
        var m = QualityMonitor(configuration: .init(window: 4, threshold: 1.5, validationWindow: 3))
        #expect(m.validationLoss == nil)
        m.recordValidation(1)
        m.recordValidation(2)
        #expect(m.validationLoss == 1.5)
        for x in [3.0, 4, 5] { m.recordValidation(x) }
        #expect(m.validationLoss == 4 && m.validationScored == 5)
        m.recordValidation(.infinity)
        #expect(m.validationScored == 5, "non-finite losses are ignored")
        #expect(m.scored == 0 && m.windowedLoss == nil, "held-out losses stay out of the prequential window")
    }

    @Test func theExplorationPoolJudgesStalenessOnceItHasABaseline() {
        var m = QualityMonitor(configuration: .init(window: 4, threshold: 1.5, validationWindow: 3))
        for _ in 0..<4 { m.record(1) }
        #expect(m.baseline == 1)
        for x in [2.0, 2, 2] {
            let flipped = m.recordExploration(x)
            #expect(!flipped)
        }
        #expect(m.explorationBaseline == 2 && m.explorationLoss == 2 && m.explorationScored == 3)
        // All observations now look worse (the model's own picks), but the unbiased pool does not: not stale.
        var flips = 0
        for _ in 0..<8 where m.record(5) { flips += 1 }
        #expect(flips == 0)
        #expect(!m.stale)
        // The pool rising past 1.5 × its baseline is: (2 + 4 + 4) / 3 = 3.33 > 3.
        let first = m.recordExploration(4), second = m.recordExploration(4)
        #expect(!first && second && m.stale)
        #expect(m.explorationScored == 5)
    }
}
