import ArgumentParser
import OspreyModel

/// The ALS options shared by `train` and `evaluate`.
struct TrainingOptions: ParsableArguments {
    @Option(help: "Latent factors d.") var dim = 20
    @Option(help: "Ridge penalty λ; default: chosen by validation on each user's latest 10%.") var lambda: Float?
    @Flag(help: "With --lambda: penalize each user and item by lambda times its number of ratings (ALS-WR).") var scaleLambda = false
    @Option(help: "ALS iterations.") var iterations = 10
    @Option(help: "Random seed of the initialization.") var seed: UInt64 = 1

    func validate() throws {
        try Bounds.check("dim", dim, Bounds.dimension)
        try Bounds.check("iterations", iterations, Bounds.iterations)
        if let lambda { try Bounds.checkPositive("lambda", Double(lambda)) }
        if scaleLambda && lambda == nil { throw ValidationError("--scale-lambda needs --lambda") }
    }

    var configuration: Trainer.Configuration {
        .init(factors: dim, lambda: lambda, scaleLambda: scaleLambda, iterations: iterations, seed: seed)
    }
}

/// Reads a ratings file, turning its errors into command-line errors.
func readRatings(_ path: String, rules: InputRules = .init()) throws -> (ratings: [Rating], format: RatingsFormat) {
    do {
        return try RatingsReader(rules: rules, progress: Console.fileProgress("reading \(path)")).read(path: path)
    } catch let e as RatingsFileError {
        throw ValidationError(e.description)
    }
}

/// `--max-abs-label`: positive and at most Float's largest finite value (labels are stored as Float).
func validateMaxAbsLabel(_ value: Double) throws {
    guard value > 0, value <= Double(Float.greatestFiniteMagnitude) else {
        throw ValidationError("--max-abs-label must be a positive number of at most \(Float.greatestFiniteMagnitude)")
    }
}
