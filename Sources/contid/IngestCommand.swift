import ArgumentParser
import AuditPipeline
import ContidDaemon

#if canImport(Glibc)
import Glibc
#endif

struct IngestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Load audit logs into the ClickHouse fleet store, attributed as replay attributes them.",
        discussion: """
            Reads auditd's or contid's logs, rebuilds the registry from the trail exactly as \
            `contid replay` does, and inserts one row per event (packaging/clickhouse/events_local.sql) \
            over ClickHouse's HTTP interface, in batches. While the server is unreachable or \
            refuses, batches wait in the spool directory and are sent again in order; a batch \
            sent twice is never visible twice (ReplacingMergeTree, read with FINAL). At the end \
            the spool is retried for --retry-for seconds; what is still spooled then is sent by \
            the next run given the same --spool-dir.

            Prints one line at the end on standard error:
              records=N events=N errors=N lost=N rows=N batches=N spooled=N rows_lost=N

            The password may also come from CONTID_CLICKHOUSE_PASSWORD.
            """)

    @Option(name: .long, help: ArgumentHelp("The server: http://[USER[:PASSWORD]@]HOST[:PORT]/", valueName: "URL"))
    var clickhouse: String

    @Option(name: .long, help: "Table the rows go into: a shard's local table, or the Distributed table.")
    var table: String = "contid.events_local"

    @Option(name: .long, help: "ClickHouse user (overrides the URL's).")
    var user: String?

    @Option(name: .long, help: "File whose first line is the password (overrides the URL's and the environment's).")
    var passwordFile: String?

    @Option(name: .long, help: "Host name of events whose records carry no node= (default: this host's name).")
    var node: String?

    @Option(name: .long, help: "Rows per batch.")
    var batchRows: Int = 10_000

    @Option(name: .long, help: "Milliseconds a batch may wait before it is sent.")
    var batchInterval: Int = 1000

    @Option(name: .long, help: "Row format: RowBinary (fastest), TabSeparated or JSONEachRow.")
    var rowFormat: RowFormatArgument = .RowBinary

    @Option(name: .long, help: "Directory for batches the server did not take (default: a new one under /var/tmp, removed when empty).")
    var spoolDir: String?

    @Option(name: .long, help: "Bytes the spool may hold; batches beyond are lost and counted.")
    var spoolLimit: Int = 1 << 30

    @Option(name: .long, help: "Seconds to keep retrying the spool at the end, while the server is away.")
    var retryFor: Int = 60

    @Option(name: .long, help: "Milliseconds of log time an incomplete event or a gap waits.")
    var timeout: UInt64 = 2000

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Report progress (MB read, MB/s) on standard error. Default: on when standard error is a terminal.")
    var progress: Bool = isatty(2) == 1

    @Argument(help: "Log files to read, in order; '-' reads standard input.")
    var files: [String] = []

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE ('-' for standard input)") }
        if batchRows < 1 { throw ValidationError("--batch-rows must be at least 1") }
        if batchInterval < 0 { throw ValidationError("--batch-interval must not be negative") }
    }

    func run() throws {
        var endpoint: ClickHouseEndpoint
        do { endpoint = try ClickHouseEndpoint(url: clickhouse) } catch { throw ValidationError("\(error)") }
        if let user { endpoint.user = user }
        if let passwordFile {
            var first: String?
            do {
                try LogReader(path: passwordFile).forEachLine { line, _ in
                    if first == nil { first = String(decoding: line, as: UTF8.self) }
                }
            } catch { throw ValidationError("cannot read --password-file: \(error)") }
            endpoint.password = first ?? ""
        } else if endpoint.password == nil, let p = getenv("CONTID_CLICKHOUSE_PASSWORD") {
            endpoint.password = String(cString: p)
        }
        var settings = ClickHouseSinkSettings()
        settings.table = table
        settings.format = rowFormat.value
        settings.batchRows = batchRows
        settings.batchInterval = .milliseconds(batchInterval)
        settings.spoolLimitBytes = spoolLimit
        settings.host = node ?? Daemon.hostName()
        let ownSpool = spoolDir == nil
        settings.spoolDirectory = spoolDir ?? "/var/tmp/contid-ingest.\(getpid())"
        let err = StandardError()
        let sink: ClickHouseSink
        do { sink = try ClickHouseSink(settings: settings, transport: ClickHouseHTTPTransport(endpoint: endpoint)) } catch {
            err.line("contid ingest: \(error)")
            throw ExitCode(1)
        }
        var lastReported = ""
        sink.onError = { e in
            let text = "\(e)"
            if text != lastReported { err.line("contid ingest: \(text)"); lastReported = text }
        }
        let ingest = ClickHouseIngest(sink: sink, timeoutMilliseconds: timeout)
        ingest.onDiagnostic = { err.line($0) }
        var failed = false
        for path in files {
            let meter = progress ? ProgressMeter(path: path) : nil
            defer { meter?.finish() }
            do { try ingest.read(path: path, progress: meter.map { m in { m.update(bytes: $0, of: $1) } }) } catch {
                err.line("contid ingest: \(error)")
                failed = true
            }
        }
        let summary = ingest.finish(drainFor: .seconds(retryFor))
        err.line(summary.line)
        if summary.rowsSpooled > 0 {
            err.line("contid ingest: \(summary.rowsSpooled) rows still in \(settings.spoolDirectory!): run again with --spool-dir \(settings.spoolDirectory!) to send them")
        } else if ownSpool {
            rmdir(settings.spoolDirectory!)
        }
        if failed || summary.rowsSpooled > 0 || summary.sink.rowsLost > 0 || (summary.errors > 0 && summary.records == 0) {
            throw ExitCode(1)
        }
    }
}

enum RowFormatArgument: String, ExpressibleByArgument, CaseIterable {
    case RowBinary, TabSeparated, JSONEachRow
    var value: ClickHouseRowFormat { ClickHouseRowFormat(rawValue: rawValue)! }
}

/// Lines on standard error, unbuffered.
struct StandardError {
    func line(_ text: String) {
        var l = text
        l += "\n"
        l.withCString { p in _ = Glibc.write(2, p, strlen(p)) }
    }
}
