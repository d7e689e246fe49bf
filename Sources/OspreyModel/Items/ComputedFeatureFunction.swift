import Foundation
import OspreyMath
import Synchronization

/// A computed feature function `f(x; θ)` (Velox §3): it maps an item's data — its attributes —
/// to a feature vector and a label offset, with parameters θ fitted offline and stored with the
/// version. It scores items no one has rated: a version's materialized table covers the items it
/// was trained on, its computed function every other item of the catalogue.
///
/// A new kind needs no change to the engine: implement this protocol and
/// ``ComputedFeatureKinds/register(_:)`` the type, so a stored version's θ can be read back.
public protocol ComputedFeatureFunction: Sendable {
    /// The name θ is stored under (``ComputedFeatureKinds``).
    static var kind: String { get }
    /// The length of a feature vector; the version's ``MaterializedFeatures/dimension``.
    var dimension: Int { get }
    /// Writes the feature vector of an item with `attributes` into `vector` — all
    /// `VectorKernels.paddedStride(dimension)` floats, the padding zero — and returns its label
    /// offset. Deterministic: the same attributes give the same bits, in every process.
    func features(of attributes: ItemAttributes, into vector: UnsafeMutablePointer<Float>) -> Float
    /// θ as bytes, read back by ``init(encoded:)``.
    func encoded() throws -> Data
    /// θ from ``encoded()``'s bytes.
    /// - Throws: when the bytes are not θ of this kind.
    init(encoded: Data) throws
}

/// The kinds of computed feature functions a version's θ can be read back as, by name. The
/// built-in kind (``HashedAttributeFeatures``) is known from the start.
public enum ComputedFeatureKinds {
    private static let kinds = Mutex<[String: any ComputedFeatureFunction.Type]>(
        [HashedAttributeFeatures.kind: HashedAttributeFeatures.self])

    /// Makes `type`'s θ readable from storage under `type.kind`.
    public static func register(_ type: any ComputedFeatureFunction.Type) {
        kinds.withLock { $0[type.kind] = type }
    }

    /// Reads θ stored under `kind`.
    /// - Throws: ``UnknownKind`` for a kind never registered; what the kind's reader throws.
    public static func decode(kind: String, _ data: Data) throws -> any ComputedFeatureFunction {
        guard let type = kinds.withLock({ $0[kind] }) else { throw UnknownKind(kind: kind) }
        return try type.init(encoded: data)
    }

    /// A stored kind this process does not know.
    public struct UnknownKind: Error, CustomStringConvertible {
        public let kind: String
        public var description: String { "computed feature function kind \"\(kind)\" is not registered" }
    }
}

/// Where a ``ComputedFeatures`` function reads items' attributes, by row.
public protocol AttributeSource: Sendable {
    /// The attributes of row `row`, or nil when it has none (its vector is then the function's
    /// value for no attributes: the mean item).
    func attributes(ofRow row: Int) -> ItemAttributes?
}

/// A feature function whose vectors are computed, row by row, from attributes: a
/// ``ComputedFeatureFunction`` over an ``AttributeSource``. Each call computes; serving puts a
/// ``FeatureCache`` in front of it (Velox §5).
public struct ComputedFeatures: FeatureFunction {
    public let function: any ComputedFeatureFunction
    public let source: any AttributeSource
    public let dimension: Int
    public let stride: Int

    public init(_ function: any ComputedFeatureFunction, source: any AttributeSource) {
        self.function = function
        self.source = source
        dimension = function.dimension
        stride = VectorKernels.paddedStride(function.dimension)
    }

    /// Computes row `item`'s vector into a stack buffer and calls `body` with it. O(the
    /// function's cost).
    public func withFeatures<R>(item: Int, _ body: (UnsafePointer<Float>, Float) throws -> R) rethrows -> R {
        try withUnsafeTemporaryAllocation(of: Float.self, capacity: stride) { buffer in
            let offset = function.features(of: source.attributes(ofRow: item) ?? [:], into: buffer.baseAddress!)
            return try body(buffer.baseAddress!, offset)
        }
    }
}
