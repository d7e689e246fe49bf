import OspreyModel
import OspreyStorage
import Synchronization

/// A model's catalogue of items in memory: each item's attributes and hidden flag, as the
/// version store holds them (``VersionStore/catalogueItems(model:)``), by a dense index in the
/// order items were first written. One per served model, shared by its serving states like
/// ``ObservedItems``: the catalogue does not depend on the version.
///
/// Items are written to the store first and here after (``Manager/putItems(model:_:)``), under
/// the model's catalogue lock, so memory never holds what the store does not — but for items
/// first known by an observation while items learn online (``addObserved(_:)``), which live in
/// memory, with their online state, and come back at a start from the item states a snapshot
/// stored for them or from the log's replay. Every change
/// raises the item's ``revision(at:)`` (the feature cache keys computed vectors by it) and the
/// catalogue's ``generation`` (a serving state's view of its items is rebuilt when it moved).
/// Thread-safe; a read takes a short lock.
public final class ItemCatalogue: AttributeSource, Sendable {
    struct Entry {
        var id: String
        var attributes: ItemAttributes
        var hidden: Bool
        var revision: Int
    }

    private struct Contents {
        var index: [String: Int] = [:]
        var entries: [Entry] = []
    }

    private let contents = Mutex(Contents())
    private let generations = Atomic<Int>(0)
    /// Serializes writes: a store write and the memory update after it. Its value is the
    /// store's catalogue revision this catalogue has read through (``follow(_:model:)``).
    let writes = Mutex<Int64>(0)

    /// An empty catalogue.
    public init() {}

    /// The catalogue the store holds for `model`. O(items).
    /// - Throws: what the store's read throws.
    static func stored(in stores: Stores, model: String) throws -> ItemCatalogue {
        let catalogue = ItemCatalogue()
        // The revision first: what is written after it is read again by the next follow.
        let revision = try stores.versions.catalogueChanges(model: model, after: .max).revision
        catalogue.apply(try stores.versions.catalogueItems(model: model))
        catalogue.writes.withLock { $0 = revision }
        return catalogue
    }

    /// Applies what the store's catalogue of `model` gained since this catalogue last read it:
    /// items another process (a cluster node) wrote. Returns how many items changed. O(changes).
    /// - Throws: what the store's read throws; nothing changed then.
    func follow(_ stores: Stores, model: String) throws -> Int {
        try writes.withLock { revision in
            let changes = try stores.versions.catalogueChanges(model: model, after: revision)
            apply(changes.items)
            revision = max(revision, changes.revision)
            return changes.items.count
        }
    }

    /// Raised by every change; read before the items a computation uses. O(1).
    public var generation: Int { generations.load(ordering: .acquiring) }

    /// Item `id`'s index, or nil. O(1).
    public func index(of id: String) -> Int? { contents.withLock { $0.index[id] } }

    /// Item `id` as the store holds it, or nil. O(1).
    public func item(_ id: String) -> CatalogueItem? {
        contents.withLock { c in
            c.index[id].map { CatalogueItem(id: id, attributes: c.entries[$0].attributes, hidden: c.entries[$0].hidden) }
        }
    }

    /// The id at `index`. O(1).
    public func id(at index: Int) -> String { contents.withLock { $0.entries[index].id } }

    /// The revision of the item at `index`: raised by each change of its attributes. O(1).
    func revision(at index: Int) -> Int { contents.withLock { $0.entries[index].revision } }

    /// The attributes at `row`: a catalogue index, optionally tagged with its revision in the
    /// high 32 bits (the feature cache's key). O(1) plus a copy-on-write reference.
    public func attributes(ofRow row: Int) -> ItemAttributes? {
        contents.withLock { c in
            let index = row & 0xffff_ffff
            return index < c.entries.count ? c.entries[index].attributes : nil
        }
    }

    /// Every item: id, whether it has attributes, whether it is hidden, by index. O(items).
    func view() -> [(id: String, hasAttributes: Bool, hidden: Bool)] {
        contents.withLock { $0.entries.map { ($0.id, !$0.attributes.isEmpty, $0.hidden) } }
    }

    /// Adds item `id`, without attributes, unless the catalogue holds it: an item first known by
    /// an observation, while items learn online (docs/architecture.md, "Items learn online").
    /// Not written to the store. Returns true when it was added. O(1).
    @discardableResult
    func addObserved(_ id: String) -> Bool {
        let added = contents.withLock { c -> Bool in
            guard c.index[id] == nil else { return false }
            c.index[id] = c.entries.count
            c.entries.append(Entry(id: id, attributes: [:], hidden: false, revision: 0))
            return true
        }
        if added { generations.add(1, ordering: .releasing) }
        return added
    }

    /// Applies items the store now holds (attributes and hidden flags as given; the last of a
    /// repeated id wins). O(items).
    func apply(_ items: [CatalogueItem]) {
        guard !items.isEmpty else { return }
        contents.withLock { c in
            for item in items {
                if let i = c.index[item.id] {
                    let changed = c.entries[i].attributes != item.attributes
                    c.entries[i].attributes = item.attributes
                    c.entries[i].hidden = item.hidden
                    if changed { c.entries[i].revision += 1 }
                } else {
                    c.index[item.id] = c.entries.count
                    c.entries.append(Entry(id: item.id, attributes: item.attributes, hidden: item.hidden, revision: 0))
                }
            }
        }
        generations.add(1, ordering: .releasing)
    }
}
