import ArgumentParser
import Foundation
import OspreyLab
import OspreyModel

/// `osprey cold-start`: how well new items are scored, without attributes, from attributes, and
/// after their first observations.
struct ColdStartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cold-start",
        abstract: "Compare held-out RMSE on items never seen in training: mean item, attributes, attributes plus first ratings.",
        discussion: """
            A share of the items (--new-share, chosen by a hash of their ids) is held out of training \
            whole. Their ratings are scored (a) as the mean trained item, as a model without \
            attributes does; (b) from their attributes through the attribute map fitted on the \
            trained items; (c) from a ridge regression on the users' weights that starts at the \
            attribute vector and learns each item's first --first ratings (the item-side online \
            update). All three score the same ratings: each new item's ratings after its first \
            --first. Works on generated data (`osprey generate --items-out`) and on MovieLens \
            ratings.csv with movies.csv.
            """)

    @Option(help: "Ratings file (MovieLens u.data, ratings.dat, or CSV with a header).") var ratings: String
    @Option(help: "Items file: CSV with a header, the item id first, then the attributes.") var items: String
    @OptionGroup var training: TrainingOptions
    @Option(help: "The share of items held out of training, 0 to 1.") var newShare = 0.1
    @Option(help: "Ratings of each new item learned before its others are scored.") var first = 5

    func validate() throws {
        guard newShare > 0, newShare < 1 else { throw ValidationError("--new-share must be a number between 0 and 1 (exclusive)") }
        guard first >= 0, first <= 1_000 else { throw ValidationError("--first must be between 0 and 1000") }
    }

    func run() throws {
        let read = try readRatings(ratings).ratings
        let catalogue: [CatalogueItem]
        do { catalogue = try ItemsReader().read(path: items) } catch { throw ValidationError("--items: \(error)") }
        let attributes = Dictionary(catalogue.map { ($0.id, $0.attributes) }, uniquingKeysWith: { $1 })
        let experiment = ColdStartExperiment(configuration: training.configuration, newShare: newShare, first: first) { Console.info($0) }
        let r: ColdStartExperiment.Result
        do {
            r = try experiment.run(ratings: read, attributes: attributes)
        } catch let e as Trainer.ConfigurationError {
            throw ValidationError(e.description)
        } catch let e as ColdStartExperiment.Failure {
            throw ValidationError(e.description)
        }
        print("new items: \(r.newItems), their ratings scored: \(r.scoredRatings), training ratings: \(r.trainingRatings)")
        print(String(format: "attribute map: held-out R² %.3f on trained items", r.mapR2))
        print(String(format: "(a) mean item (no attributes)              RMSE %.4f", r.meanItemRMSE))
        print(String(format: "(b) from attributes                        RMSE %.4f", r.attributesRMSE))
        print(String(format: "(c) attributes, then first %d ratings online RMSE %.4f", first, r.onlineRMSE))
    }
}
