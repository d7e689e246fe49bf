import ArgumentParser
import Foundation
import OspreyStorage

/// `osprey models`: list the models in a data directory.
struct ModelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "models", abstract: "List models, versions, user and item counts.")

    @Option(help: "Data directory.") var dataDir = "osprey-data"
    @Option(help: StoreLocation.help) var store: String?

    func run() throws {
        let location = try StoreLocation(dataDir: dataDir, store: self.store)
        guard location.exists else {
            throw ValidationError("no Osprey store in \(dataDir); `osprey train --data-dir \(dataDir) ...` creates one")
        }
        let store = try location.open(readOnly: true)
        let models = try store.versions.models()
        if models.isEmpty { print("no models in \(location.name)") }
        for m in models {
            let observations = try store.log.observationCount(model: m.name)
            print("\(m.name)  serving v\(m.servingVersion)  observations \(observations)")
            for v in try store.versions.versions(model: m.name) {
                let users = try store.snapshots.userCount(model: m.name, version: v.number)
                let validation = v.metadata.validationRMSE.map { String(format: "%.4f", $0) } ?? "-"
                print("  v\(v.number)  \(v.status.rawValue)  d=\(v.metadata.factors)  users \(users)  items \(v.items)  λ=\(String(format: "%g", v.metadata.lambda))\(v.metadata.scaledLambda ? "·n" : "")  training RMSE \(v.metadata.trainingRMSE.map { String(format: "%.4f", $0) } ?? "-")  validation RMSE \(validation)  created \(v.createdAt)")
                if let source = v.metadata.source { print("      \(source)") }
            }
        }
    }
}
