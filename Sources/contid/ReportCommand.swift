import ArgumentParser
import AuditPipeline

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Summarize audit logs per container: events by record type, top executables, failed syscalls, registrations, refusals, losses.",
        discussion: """
            Reads the same inputs as search and takes its selection options; an event belongs to the \
            container its CONTAINER_ID record names innermost (registrations, CONTAINER_INFO and \
            CONTAINER_LOST to the container they name), events without one to the host. The summary \
            counts are aureport --summary's (distinct users are auids, distinct files PATH names).

            Formats: text (aligned tables), json (one object), csv (container,section,name,value).
            """)

    @OptionGroup var options: SearchOptions

    @Option(name: .long, help: "Output form: text, json or csv.")
    var format: ReportFormatArgument = .text

    @Option(name: .long, help: "How many executables to list per container.")
    var top: Int = 5

    func run() throws {
        var q = try options.query()
        // The report attributes registrations by their own contid= field: it selects containers itself.
        let only = q.contid
        q.contid = nil
        let inputs = try options.inputs()
        let out = StandardOutput()
        let report = SearchReport(contid: only?.bytes, nested: options.nested)
        let result = try runSearch(query: q, inputs: inputs, options: options, sink: report, output: out)
        out.write(report.render(format.value, top: top))
        out.flush()
        if result.failed { throw ExitCode(2) }
    }
}

enum ReportFormatArgument: String, ExpressibleByArgument, CaseIterable {
    case text, json, csv
    var value: SearchReport.Format { SearchReport.Format(rawValue: rawValue)! }
}
