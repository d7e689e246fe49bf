import Testing
@testable import OspreyModel

/// The one definition of what an id and a label must be (``InputRules``), which the server's
/// endpoints and the ratings files share.
struct InputRulesTests {
    let rules = InputRules()

    func problem(id: String) -> String? {
        do { try rules.check(id: id, field: "uid") } catch { return error.description }
        return nil
    }

    @Test func identifiers() {
        #expect(problem(id: "u1") == nil)
        #expect(problem(id: "") == "uid must not be empty")
        #expect(problem(id: "a\u{0}b") == "uid must not contain NUL (U+0000)")
        #expect(problem(id: "\u{0}") == "uid must not contain NUL (U+0000)")
        // Counted in code points, as JSON Schema's maxLength counts: 256 two-byte ones pass.
        #expect(problem(id: String(repeating: "é", count: 256)) == nil)
        #expect(problem(id: String(repeating: "x", count: 256)) == nil)
        #expect(problem(id: String(repeating: "é", count: 257)) == "uid must be at most 256 characters long")
        #expect(problem(id: String(repeating: "😀", count: 257)) == "uid must be at most 256 characters long")
        #expect(problem(id: " ") == nil, "spaces are characters like any other")
    }

    /// The bound is exact on the Double the client sent, although labels are stored as Float:
    /// 1e6 passes, the next Double above it (which would round to 1e6 as a Float) does not.
    @Test func labels() throws {
        #expect(try rules.check(label: 1_000_000) == 1_000_000)
        #expect(try rules.check(label: -1_000_000) == -1_000_000)
        #expect(try rules.check(label: 4.5) == 4.5)
        #expect(try rules.check(label: -0.0).sign == .minus)
        for bad in [Double(1_000_000).nextUp, -Double(1_000_000).nextUp, 2e6, .infinity, -.infinity, .nan, 3.4e38] {
            #expect(throws: InputRuleViolation.self, "\(bad)") { try rules.check(label: bad) }
        }
        let error = #expect(throws: InputRuleViolation.self) { try rules.check(label: 2_000_000.5, field: "observations.3.label") }
        #expect(error?.description == "observations.3.label must be a number from -1000000 to 1000000, got 2000000.5")
        let loose = InputRules(maxAbsLabel: Double(Float.greatestFiniteMagnitude))
        #expect(try loose.check(label: Double(Float.greatestFiniteMagnitude)) == .greatestFiniteMagnitude)
        #expect(throws: InputRuleViolation.self) { try loose.check(label: Double(Float.greatestFiniteMagnitude).nextUp) }
    }
}
