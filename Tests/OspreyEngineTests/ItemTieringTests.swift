import Foundation
import OspreyModel
import OspreyTestSupport
import Testing
@testable import OspreyEngine
@testable import OspreyStorage

/// Tiered item state (``Manager/Configuration/hotItems``; docs/architecture.md, "Items learn
/// online"): beyond the hot items, an item whose state the store holds as it is goes cold after
/// a snapshot and is read back when it next learns. Tiering moves states, never values.
struct ItemTieringTests {
    static func configuration(hotItems: Int, hotUsers: Int = 20) -> Manager.Configuration {
        var c = Manager.Configuration(monitor: .init(validationFraction: 0), hotUsers: hotUsers, warmStart: false, itemUpdates: true)
        c.hotItems = hotItems
        return c
    }

    /// Every item's observations learned online, as `GET …/items/{item}` reports them.
    static func observations(_ m: Manager) throws -> [Int?] {
        try (0..<40).map { try m.item(model: "demo", id: "i\($0)").observations }
    }

    @Test("tiered items learn bit for bit as untiered ones, hold at most their hot items after a snapshot, and restart exactly",
          arguments: TrainedStore.Backend.durable)
    func tieredItemsLearnAsUntiered(_ backend: TrainedStore.Backend) async throws {
        let a = try TrainedStore(backend: backend), b = try TrainedStore(backend: backend)
        defer { a.remove(); b.remove() }
        let tiered = try Manager(stores: a.stores, configuration: Self.configuration(hotItems: 6), logger: quiet)
        let untiered = try Manager(stores: b.stores, configuration: Self.configuration(hotItems: .max), logger: quiet)
        let learner = try #require(try tiered.registry.model("demo").current.itemLearner)
        #expect(learner.counts.hot == 6 && learner.counts.cold == 34, "a start keeps only the hot items' states")
        let stream = ItemLearningTests.stream(900, seed: 5)
        for part in 0..<3 {
            let slice = Array(stream[(part * 300)..<((part + 1) * 300)])
            for m in [tiered, untiered] { _ = try await m.observe(model: "demo", slice) }
            #expect(learner.counts.hot > 6, "cold items were read back to learn (part \(part))")
            for m in [tiered, untiered] {
                m.itemPublisher.publish()
                try m.snapshotter.snapshot()
            }
            #expect(learner.counts.hot == 6 && learner.counts.hot + learner.counts.cold == 40, "part \(part)")
        }
        #expect(learner.unreadableColdStates == 0)
        // Items learned since the last snapshot are not as the store holds them: they stay hot
        // however many there are.
        let recent = Array(stream[0..<50])
        for m in [tiered, untiered] {
            _ = try await m.observe(model: "demo", recent)
            m.itemPublisher.publish()
        }
        learner.evictClean()
        #expect(learner.counts.hot == Set(recent.map(\.item)).count)
        for m in [tiered, untiered] {
            _ = try await m.observe(model: "demo", Array(stream[50..<100]))
            m.itemPublisher.publish()
        }
        let live = try ItemLearningTests.Captured(tiered)
        ItemLearningTests.expectSame(live, try ItemLearningTests.Captured(untiered), "tiered against untiered")
        #expect(try Self.observations(tiered) == Self.observations(untiered))
        #expect(try Self.observations(tiered).allSatisfy { ($0 ?? 0) > 0 })

        let restarted = try Manager(stores: try a.reopen(), configuration: Self.configuration(hotItems: 6), logger: quiet)
        restarted.itemPublisher.publish()
        ItemLearningTests.expectSame(live, try ItemLearningTests.Captured(restarted), "after a tiered restart")
        #expect(try Self.observations(restarted) == Self.observations(untiered))
    }

    @Test("a cold item whose state cannot be read does not learn: its user does, and the failure is counted")
    func unreadableColdStateIsCounted() async throws {
        let t = try TrainedStore()
        let faults = Faults()
        // Every user hot, so the only snapshot read while learning is the cold item's.
        let m = try Manager(stores: t.stores.injectingFaults(faults), configuration: Self.configuration(hotItems: 1, hotUsers: .max),
                            logger: quiet)
        let state = try m.registry.model("demo").current
        let learner = try #require(state.itemLearner)
        #expect(learner.counts.hot == 1)
        let cold = try #require((0..<40).map { "i\($0)" }.first { !Self.isHot(state, $0) })
        let row = ItemLearningTests.liveRow(state, cold)
        let before = try #require(try state.users.fullState("u1")).observations
        faults.failNext(.snapshotRead)
        _ = try await m.observe(model: "demo", [("u1", cold, 5)])
        #expect(learner.unreadableColdStates == 1)
        #expect(ItemLearningTests.liveRow(state, cold) == row, "the item did not learn")
        #expect(try #require(try state.users.fullState("u1")).observations == before + 1, "its user did")
        // Read at its next observation, it learns.
        _ = try await m.observe(model: "demo", [("u2", cold, 4)])
        #expect(ItemLearningTests.liveRow(state, cold) != row)
        #expect(try m.item(model: "demo", id: cold).observations == 1)
    }

    /// Whether item `id`'s state is held (hot) by `state`'s learner.
    static func isHot(_ state: ServingState, _ id: String) -> Bool {
        state.itemLearner!.isHot(row: state.features.row(of: id)!)
    }
}
