import ArgumentParser

@main
struct Contid: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "contid",
        abstract: "Audit container identifiers for Linux: register, inspect and read the trail.",
        discussion: """
            contid gives Linux audit the container IDs the kernel never got: an orchestrator \
            registers an ID for a container's first process, every descendant inherits it, \
            and every audit event carries it. contidd does the work; this tool talks to it \
            and reads its logs.
            """,
        subcommands: [
            SetCommand.self, GetCommand.self, CapContIDCommand.self, PsCommand.self, StatusCommand.self,
            ReplayCommand.self, IngestCommand.self,
        ])

    /// `contid --run-dir DIR set ...`: given before the subcommand, it reaches the subcommand's own group.
    @OptionGroup var daemon: DaemonSocketOptions
}
