import ArgumentParser
import Foundation
import OspreyModel
import OspreyStorage

/// `osprey quickstart`: the main job end to end, on the embedded store (or `--store`).
struct QuickstartCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quickstart",
        abstract: "Generate synthetic ratings, train model `demo`, and serve it with ready-to-paste curl examples.")

    @OptionGroup var options: ServeOptions
    @Option(help: "Model name.") var model = "demo"

    func run() async throws {
        let location = try StoreLocation(dataDir: options.dataDir, store: options.store)
        var exists = false
        if location.exists {
            exists = try location.open().versions.models().contains { $0.name == self.model }
        }
        if exists {
            Console.info("model `\(model)` already in \(location.name); serving it (delete it to start over)")
        } else {
            try FileManager.default.createDirectory(atPath: options.dataDir, withIntermediateDirectories: true)
            let path = (options.dataDir as NSString).appendingPathComponent("\(model)-ratings.csv")
            let itemsPath = (options.dataDir as NSString).appendingPathComponent("\(model)-items.csv")
            let data = try SyntheticRatings.Configuration.make(
                users: 2000, items: 1000, ratings: 100_000, dim: 10, noise: 0.5, seed: 42, zipf: 1.0, attributeShare: 0.6)
            try write(data.ratings(), to: path)
            try SyntheticItems.csv(data.catalogue!.items).write(toFile: itemsPath, atomically: true, encoding: .utf8)
            Console.info("generated 100000 synthetic ratings (2000 users, 1000 items, d=10, noise σ=0.5) in \(path), "
                + "the items' attributes in \(itemsPath)")
            try train(in: location, model: model, ratingsPath: path, itemsPath: itemsPath, configuration: .init(factors: 10),
                      rules: InputRules(maxAbsLabel: options.maxAbsLabel))
        }
        let name = model
        try await serve(options, autoRetrainByDefault: true) { base in
            Console.info("""

                Osprey is serving model `\(name)` at \(base). Try, in another terminal:

                  curl -s '\(base)/v1/models/\(name)/users/u1/predict?item=i7'
                  curl -s -X POST '\(base)/v1/models/\(name)/users/u1/topk' -d '{"k":5}'
                  curl -s -X POST '\(base)/v1/models/\(name)/users/u1/observe' -d '{"item":"i7","label":5}'
                  curl -s '\(base)/v1/models/\(name)/users/u1/predict?item=i7'
                  curl -s '\(base)/v1/models/\(name)/users/new-user'
                  curl -s -X PUT '\(base)/v1/models/\(name)/items/new-film' -d '{"attributes":{"genres":["Drama"],"year":2001}}'
                  curl -s '\(base)/v1/models/\(name)/users/u1/predict?item=new-film'
                  curl -s -X PUT '\(base)/v1/models/\(name)/exploration' -d '{"policy":"linucb(1.0)"}'
                  curl -s -X POST '\(base)/v1/models/\(name)/users/u1/topk' -d '{"k":3}'
                  curl -s -X PUT '\(base)/v1/models/\(name)/exploration' -d '{"policy":"greedy"}'
                  curl -s '\(base)/v1/models/\(name)'
                  curl -s '\(base)/metrics'

                To require access tokens, put lines like `admin TOKEN` (roles: read, write, admin) in a file
                and pass --tokens-file FILE; then send `-H 'Authorization: Bearer TOKEN'` (docs/operations.md).

                Ctrl-C stops the server gracefully (in-flight requests finish, user weights are snapshotted).

                """)
        }
    }
}
