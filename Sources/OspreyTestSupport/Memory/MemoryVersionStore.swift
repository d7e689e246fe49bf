import Foundation
import OspreyModel
import OspreyStorage
import Synchronization

/// A ``VersionStore`` in memory, with the SQLite catalogue's rules: a version number is taken
/// once, serving one version retires the previous, a competition names a stored version, a
/// model's items read back in first-write order.
public final class MemoryVersionStore: VersionStore, Sendable {
    private struct Model {
        var record: ModelRecord
        var exploration = "greedy"
        var competition: CompetitionRecord?
    }

    private struct State {
        var models: [String: Model] = [:]
        var versions: [String: [Int: (record: VersionRecord, version: ModelVersion)]] = [:]
        var ratings: [String: [Rating]] = [:]
        var items: [String: Items] = [:]
    }

    /// A model's items and their first-write order.
    private struct Items {
        var order: [String] = []
        var byId: [String: CatalogueItem] = [:]
        /// The catalogue's revision, and the one each item was last written at.
        var revision: Int64 = 0
        var revisions: [String: Int64] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public func models() throws -> [ModelRecord] {
        state.withLock { $0.models.values.map(\.record).sorted { $0.name < $1.name } }
    }

    public func versions(model: String) throws -> [VersionRecord] {
        state.withLock { ($0.versions[model] ?? [:]).values.map(\.record).sorted { $0.number < $1.number } }
    }

    public func loadVersion(model: String, number: Int) throws -> ModelVersion {
        guard let v = state.withLock({ $0.versions[model]?[number]?.version }) else {
            throw StorageError(.notFound, "model \(model) has no version \(number)")
        }
        return v
    }

    public func insertVersion(_ version: ModelVersion, trainingRatings: [Rating], serve: Bool) throws {
        try state.withLock { s in
            if s.versions[version.model]?[version.number] != nil {
                throw StorageError(.conflict, "model \(version.model) already has a version \(version.number)")
            }
            let record = VersionRecord(
                model: version.model, number: version.number, createdAt: version.createdAt, status: serve ? .serving : .built,
                parent: version.parent, dimension: version.dimension, items: version.features.catalog.count,
                metadata: version.metadata)
            s.versions[version.model, default: [:]][version.number] = (record, version)
            s.ratings[version.model, default: []] += trainingRatings
            if serve { Self.serve(&s, model: version.model, version: version.number) }
        }
    }

    public func setServing(model: String, version: Int) throws {
        try state.withLock { s in
            guard s.versions[model]?[version] != nil else { throw StorageError(.notFound, "model \(model) has no version \(version)") }
            Self.serve(&s, model: model, version: version)
        }
    }

    @discardableResult
    public func failUnservedVersions(model: String) throws -> [Int] {
        state.withLock { s in
            var failed: [Int] = []
            for (n, v) in s.versions[model] ?? [:] where v.record.status == .built {
                s.versions[model]?[n]?.record.status = .failed
                failed.append(n)
            }
            return failed.sorted()
        }
    }

    public func deleteVersions(model: String, _ numbers: [Int]) throws {
        state.withLock { s in for n in numbers { s.versions[model]?[n] = nil } }
    }

    public func initialRatings(model: String) throws -> [Rating] {
        state.withLock { $0.ratings[model] ?? [] }
    }

    public func trainingItems(model: String, uid: String) throws -> [String] {
        state.withLock { ($0.ratings[model] ?? []).filter { $0.uid == uid }.map(\.item) }
    }

    public func deleteTrainingRatings(model: String, uid: String) throws -> Int {
        state.withLock { s in
            let before = s.ratings[model]?.count ?? 0
            s.ratings[model]?.removeAll { $0.uid == uid }
            return before - (s.ratings[model]?.count ?? 0)
        }
    }

    public func competitions() throws -> [String: CompetitionRecord] {
        state.withLock { $0.models.compactMapValues(\.competition) }
    }

    public func setCompetition(model: String, _ record: CompetitionRecord?) throws {
        try state.withLock { s in
            if let record, s.versions[model]?[record.challenger] == nil {
                throw StorageError(.notFound, "model \(model) has no version \(record.challenger)")
            }
            guard s.models[model] != nil else { throw StorageError(.notFound, "model \(model) does not exist") }
            s.models[model]?.competition = record
            for (n, v) in s.versions[model] ?? [:] where v.record.status == .challenger { s.versions[model]?[n]?.record.status = .retired }
            if let record { s.versions[model]?[record.challenger]?.record.status = .challenger }
        }
    }

    public func promoteChallenger(model: String, version: Int) throws {
        state.withLock { s in
            Self.serve(&s, model: model, version: version)
            s.models[model]?.competition = nil
        }
    }

    public func explorationPolicies() throws -> [String: String] {
        state.withLock { $0.models.mapValues(\.exploration) }
    }

    public func setExplorationPolicy(model: String, policy: String) throws {
        try state.withLock { s in
            guard s.models[model] != nil else { throw StorageError(.notFound, "model \(model) does not exist") }
            s.models[model]?.exploration = policy
        }
    }

    public func putItems(model: String, _ items: [CatalogueItem]) throws {
        // As SQLite's JSON: a number that is not finite cannot be written.
        for item in items {
            for case .number(let x) in item.attributes.values where !x.isFinite {
                throw StorageError(.io, "cannot write item \(item.id) of \(model): its attributes cannot be encoded as JSON (a number that is not finite?)")
            }
        }
        state.withLock { s in
            var stored = s.items[model] ?? Items()
            guard !items.isEmpty else { return }
            stored.revision += 1
            for item in items {
                if stored.byId[item.id] == nil { stored.order.append(item.id) }
                stored.byId[item.id] = item
                stored.revisions[item.id] = stored.revision
            }
            s.items[model] = stored
        }
    }

    public func setItemHidden(model: String, item: String, hidden: Bool) throws -> Bool {
        state.withLock { s in
            guard var stored = s.items[model], stored.byId[item] != nil else { return false }
            stored.byId[item]?.hidden = hidden
            stored.revision += 1
            stored.revisions[item] = stored.revision
            s.items[model] = stored
            return true
        }
    }

    public func catalogueItems(model: String) throws -> [CatalogueItem] {
        state.withLock { s in
            guard let stored = s.items[model] else { return [] }
            return stored.order.compactMap { stored.byId[$0] }
        }
    }

    public func catalogueItem(model: String, id: String) throws -> CatalogueItem? {
        state.withLock { $0.items[model]?.byId[id] }
    }

    public func catalogueChanges(model: String, after revision: Int64) throws -> (items: [CatalogueItem], revision: Int64) {
        state.withLock { s in
            guard let stored = s.items[model] else { return ([], 0) }
            let changed = stored.order.filter { stored.revisions[$0, default: 0] > revision }
                .sorted { stored.revisions[$0]! < stored.revisions[$1]! }
            return (changed.map { stored.byId[$0]! }, stored.revision)
        }
    }

    private static func serve(_ s: inout State, model: String, version: Int) {
        for (n, v) in s.versions[model] ?? [:] where n != version && v.record.status == .serving {
            s.versions[model]?[n]?.record.status = .retired
        }
        s.versions[model]?[version]?.record.status = .serving
        if s.models[model] == nil {
            s.models[model] = Model(record: ModelRecord(name: model, servingVersion: version, createdAt: Date()))
        } else {
            s.models[model]?.record.servingVersion = version
        }
    }
}
