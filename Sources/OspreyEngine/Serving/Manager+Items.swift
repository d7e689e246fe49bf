import OspreyModel
import OspreyStorage

/// Where a served item's vector comes from.
public enum ItemSource: String, Sendable {
    /// The version's trained table (the item was in its training data).
    case trained
    /// Computed from the item's attributes by the version's attribute map.
    case attributes
    /// The mean trained item: the version has no attribute map, or the item no attributes.
    case mean
    /// Learned online (item updates on): the item's row has moved with its observations since
    /// the version started, from whichever start above.
    case online
}

/// What `GET /v1/models/{model}/items/{item}` reports about an item.
public struct ItemInfo: Sendable, Equatable {
    public var id: String
    /// The item's attributes in the catalogue (empty for a trained item never written).
    public var attributes: ItemAttributes
    /// Whether top-k answers leave it out.
    public var hidden: Bool
    /// Where the serving version's vector for it comes from.
    public var source: ItemSource
    /// The observations the serving version's item state has learned online (nil: item updates
    /// off).
    public var observations: Int?
    /// The serving version.
    public var version: Int
}

extension Manager {
    /// Creates or replaces items of the model's catalogue: their attributes, durable before this
    /// returns (docs/architecture.md, "Items and attributes"). An item keeps its hidden flag.
    /// The serving version scores each at once: a trained item from its table, another from its
    /// attributes. Cached answers are invalidated. Nothing is stored when any item is invalid.
    /// O(items · attributes) plus the store's commit.
    /// - Throws: ``OspreyError`` `unknownModel`; `invalidArgument` naming the item's field as
    ///   `naming(index, "id" or "attributes")` gives it (`items.3.attributes`, then the
    ///   attribute: `items.3.attributes.genres`); `unavailable` when the store cannot write
    ///   (nothing was stored).
    public func putItems(model name: String, _ items: [(id: String, attributes: ItemAttributes)],
                         naming: (_ index: Int, _ field: String) -> String = { "items.\($0).\($1)" }) throws {
        let model = try registry.model(name)
        let rules = ingestor.rules
        for (k, item) in items.enumerated() {
            do throws(InputRuleViolation) {
                try rules.check(id: item.id, field: naming(k, "id"))
                try AttributeRules.default.check(item.attributes, field: naming(k, "attributes"))
            } catch {
                throw OspreyError(error)
            }
        }
        let catalogue = model.current.catalogue
        try catalogue.writes.withLock { _ in
            let records = items.map { item in
                CatalogueItem(id: item.id, attributes: item.attributes, hidden: catalogue.item(item.id)?.hidden ?? false)
            }
            try write(model: name, "items") { try stores.versions.putItems(model: name, records) }
            catalogue.apply(records)
        }
        changedCatalogue(model)
    }

    /// Hides an item from top-k answers, or shows it again; predict still scores it. A trained
    /// item the catalogue does not hold yet is added to it without attributes. Durable before it
    /// returns. O(1) plus the store's commit.
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownItem` (neither trained nor in the
    ///   catalogue), `unavailable` when the store cannot write.
    public func setItemHidden(model name: String, item: String, hidden: Bool) throws {
        let model = try registry.model(name)
        let state = model.current
        let catalogue = state.catalogue
        try catalogue.writes.withLock { _ in
            var record = catalogue.item(item)
            if record == nil, state.version.features.catalog.row(of: item) != nil { record = CatalogueItem(id: item) }
            guard var record else { throw OspreyError.unknownItem(item, model: name, version: state.version.number) }
            record.hidden = hidden
            try write(model: name, "item \(item)") { try stores.versions.putItems(model: name, [record]) }
            catalogue.apply([record])
        }
        changedCatalogue(model)
    }

    /// What the model serves of item `id`: its attributes, hidden flag, where its vector comes
    /// from and, with item updates, the observations it learned online. O(1).
    /// - Throws: ``OspreyError`` `unknownModel`, `unknownItem` when the item is neither trained
    ///   nor in the catalogue.
    public func item(model name: String, id: String) throws -> ItemInfo {
        let state = try registry.model(name).current
        let record = state.catalogue.item(id)
        let trained = state.version.features.catalog.row(of: id) != nil
        guard trained || record != nil else { throw OspreyError.unknownItem(id, model: name, version: state.version.number) }
        let observations = state.itemLearner.map { learner in state.features.row(of: id).map { learner.observations(row: $0) } ?? 0 }
        let source: ItemSource = (observations ?? 0) > 0 ? .online : trained ? .trained
            : state.version.computed != nil && !(record?.attributes.isEmpty ?? true) ? .attributes : .mean
        return ItemInfo(id: id, attributes: record?.attributes ?? [:], hidden: record?.hidden ?? false, source: source,
                        observations: observations, version: state.version.number)
    }

    /// Runs a catalogue write, as `unavailable` when the store fails.
    private func write(model: String, _ what: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let error as StorageError {
            throw OspreyError(.unavailable, "\(what) of model `\(model)` could not be stored (\(error)); nothing was written, try again")
        }
    }

    /// After a catalogue change: every state's cached answers may rank or score the changed
    /// items, so they go (an answer computed before the change was read at the older
    /// generation and is never served). A cluster node announces the change: the other nodes
    /// read it from the store at once (or at their next heartbeat).
    private func changedCatalogue(_ model: ServedModel) {
        for state in model.learningStates { state.predictions.invalidateAll() }
        registry.announce("the item change", of: model.name, logger: logger)
    }
}
