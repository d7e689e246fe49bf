import ArgumentParser

/// The command-line tool: generate data, train a model, serve it, inspect it.
@main
struct Osprey: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "osprey",
        abstract: "Serve personalized models that learn from every observation (Velox).",
        subcommands: [
            QuickstartCommand.self, GenerateCommand.self, TrainCommand.self, ServeCommand.self, ModelsCommand.self,
            EvaluateCommand.self, ColdStartCommand.self, RetrainCommand.self, ImportCommand.self, SimulateCommand.self, EvaluatePolicyCommand.self,
            RouterConfigCommand.self, RetrainWorkerCommand.self,
        ])
}
