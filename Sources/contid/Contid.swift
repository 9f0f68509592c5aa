import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

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
            ReplayCommand.self, OCIHookCommand.self, HookConfigCommand.self, DemoCommand.self,
            SearchCommand.self, IndexCommand.self, ReportCommand.self, IngestCommand.self,
        ])

    /// `contid oci-hook` as hook-config installs it runs without the argument parser:
    /// a runtime waits for it at every container start.
    static func main() {
        let arguments = CommandLine.arguments
        if arguments.count > 1, arguments[1] == "oci-hook", let hook = OCIHook(arguments: arguments.dropFirst(2)) {
            Glibc.exit(hook.run())
        }
        main(nil)
    }

    /// `contid --run-dir DIR set ...`: given before the subcommand, it reaches the subcommand's own group.
    @OptionGroup var daemon: DaemonSocketOptions
}
