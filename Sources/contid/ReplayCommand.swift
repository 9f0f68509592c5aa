import ArgumentParser
import AuditPipeline

#if canImport(Glibc)
import Glibc
#endif

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Read audit logs offline: assemble events and print them.",
        discussion: """
            Reads auditd logs (RAW or ENRICHED, with or without node= prefixes) and groups \
            records into events by (node, serial). Events end at EOE, at a standalone record \
            type, or when the log's clock passes them by the timeout. A line that is not an \
            audit record is reported as FILE:LINE: what is wrong, on standard error, and \
            skipped; lines starting with '#' are comments.

            Formats:
              raw      the events' records, one per line, grouped by event
              json     one JSON object per event (node, serial, time, contid, records)
              summary  one line: records=N events=N errors=N lost=N
                       (lost = serials missing between those seen)
            """)

    @Option(name: .long, help: "Output form: raw, json or summary.")
    var format: ReplayFormatArgument = .raw

    @Option(name: .long, help: "Milliseconds of log time an incomplete event or a gap waits.")
    var timeout: UInt64 = 2000

    @Argument(help: "Log files to read, in order; '-' reads standard input.")
    var files: [String] = []

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE ('-' for standard input)") }
    }

    func run() throws {
        let out = StandardOutput()
        let replay = Replay(format: format.value, output: out, timeoutMilliseconds: timeout)
        var failed = false
        for path in files {
            do { try replay.read(path: path) } catch {
                out.diagnostic("contid replay: \(error)")
                failed = true
            }
        }
        let summary = replay.finish()
        out.flush()
        if failed || (summary.errors > 0 && summary.records == 0) { throw ExitCode(1) }
    }
}

enum ReplayFormatArgument: String, ExpressibleByArgument, CaseIterable {
    case raw, json, summary
    var value: ReplayFormat { ReplayFormat(rawValue: rawValue)! }
}

/// Buffered standard output; diagnostics go unbuffered to standard error.
final class StandardOutput: ReplayOutput {
    private var buffer: [UInt8] = []
    init() { buffer.reserveCapacity(1 << 20) }
    func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 20 { flush() }
    }
    func diagnostic(_ text: String) {
        flush()
        var line = text
        line += "\n"
        line.withCString { p in _ = Glibc.write(2, p, strlen(p)) }
    }
    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { p in
            var off = 0
            while off < p.count {
                let n = Glibc.write(1, p.baseAddress! + off, p.count - off)
                if n <= 0 { if errno == EINTR { continue }; return }
                off += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
    deinit { flush() }
}
