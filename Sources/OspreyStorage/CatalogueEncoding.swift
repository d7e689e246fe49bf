import Foundation
import OspreyMath
import OspreyModel

/// How the catalogue stores a version and an item, alike in every database: metadata as JSON,
/// item ids as a JSON array, θ's table, offsets and prior as Float32 blobs
/// (``Float32Blob``), the computed feature function as its kind and bytes, an item's
/// attributes as a JSON object with its keys sorted.
enum CatalogueEncoding {
    /// A version's stored columns.
    struct Version {
        var metadata: String
        var ids: Data
        var features: Data
        var offsets: Data
        var prior: Data
        var computedKind: String?
        var computed: Data?
    }

    static func encode(_ version: ModelVersion) throws -> Version {
        let computed = try version.computed.map { (kind: type(of: $0).kind, bytes: try $0.encoded()) }
        return Version(
            metadata: String(decoding: try JSONEncoder().encode(version.metadata), as: UTF8.self),
            ids: try JSONEncoder().encode(version.features.catalog.ids),
            features: Float32Blob.data(version.features.table), offsets: Float32Blob.data(version.features.offsets),
            prior: Float32Blob.data(version.prior), computedKind: computed?.kind, computed: computed?.bytes)
    }

    /// The training metadata of version `number` of `model`, as a version list shows it.
    /// - Throws: ``StorageError`` `.corrupt` when it is unreadable.
    static func metadata(_ json: String, model: String, number: Int) throws -> TrainingMetadata {
        guard let metadata = try? JSONDecoder().decode(TrainingMetadata.self, from: Data(json.utf8)) else {
            throw StorageError(.corrupt, "metadata of \(model) v\(number) is unreadable")
        }
        return metadata
    }

    /// The version stored as `stored`.
    /// - Throws: ``StorageError`` `.corrupt` when a part is unreadable or the sizes disagree.
    static func decode(_ stored: Version, model: String, number: Int, createdAt: Double, parent: Int?, dimension: Int,
                       lambda: Float) throws -> ModelVersion {
        let stride = VectorKernels.paddedStride(dimension)
        guard let metadata = try? JSONDecoder().decode(TrainingMetadata.self, from: Data(stored.metadata.utf8)),
              let ids = try? JSONDecoder().decode([String].self, from: stored.ids)
        else { throw StorageError(.corrupt, "version \(number) of \(model) is unreadable") }
        let table = Float32Blob.floats(stored.features), offsets = Float32Blob.floats(stored.offsets)
        let prior = Float32Blob.floats(stored.prior)
        guard table.count == ids.count * stride, offsets.count == ids.count, prior.count == dimension else {
            throw StorageError(.corrupt, "version \(number) of \(model) has inconsistent sizes")
        }
        var computed: (any ComputedFeatureFunction)?
        if let kind = stored.computedKind {
            do {
                computed = try ComputedFeatureKinds.decode(kind: kind, stored.computed ?? Data())
            } catch {
                throw StorageError(.corrupt, "the computed features of version \(number) of \(model) are unreadable: \(error)")
            }
            guard computed!.dimension == dimension else {
                throw StorageError(.corrupt, "the computed features of version \(number) of \(model) have dimension \(computed!.dimension), not \(dimension)")
            }
        }
        return ModelVersion(
            model: model, number: number, createdAt: Date(timeIntervalSince1970: createdAt),
            features: MaterializedFeatures(dimension: dimension, ids: ids, table: table, offsets: offsets), computed: computed,
            lambda: lambda, prior: prior, metadata: metadata, parent: parent)
    }

    /// Each item's attributes as stored, in order.
    /// - Throws: ``StorageError`` `.io` when an attribute cannot be encoded (a number that is not
    ///   finite).
    static func attributes(_ items: [CatalogueItem], model: String) throws -> [String] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return try items.map { item in
            guard let json = try? encoder.encode(item.attributes) else {
                throw StorageError(.io, "cannot write item \(item.id) of \(model): its attributes cannot be encoded as JSON (a number that is not finite?)")
            }
            return String(decoding: json, as: UTF8.self)
        }
    }

    /// The item stored as `(id, attributes, hidden)`.
    /// - Throws: ``StorageError`` `.corrupt` when its attributes are not a JSON object of values.
    static func item(id: String, attributes json: String, hidden: Bool, model: String, decoder: JSONDecoder) throws -> CatalogueItem {
        guard let attributes = try? decoder.decode(ItemAttributes.self, from: Data(json.utf8)) else {
            throw StorageError(.corrupt, "attributes of item \(id) of \(model) are unreadable")
        }
        return CatalogueItem(id: id, attributes: attributes, hidden: hidden)
    }
}
