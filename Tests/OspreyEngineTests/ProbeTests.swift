import OspreyMath
import OspreyModel
@testable import OspreyStorage
import OspreyTestSupport
import Testing
@testable import OspreyEngine

@Suite struct ProbeTests {
    @Test func probe() async throws {
        let a = try TrainedStore()
        defer { a.remove() }
        let (m, _) = try TieredStoreTests().open(a, hotUsers: 1000)
        let first: [(uid: String, item: String, label: Float)] = (0..<20).map { ("u\($0)", "i\($0)", 4) }
        try await m.observe(model: "demo", first)
        weak var oldState = try m.registry.model("demo").current
        weak var oldUsers = try m.registry.model("demo").current.users
        let id = try m.retrainer.start(model: "demo")
        _ = try await m.retrainer.wait(forJob: id, model: "demo")
        print("PROBE after retrain state alive:", oldState != nil, "users alive:", oldUsers != nil)
        try await Task.sleep(for: .seconds(1))
        print("PROBE 1s later state alive:", oldState != nil, "users alive:", oldUsers != nil)
    }
}
