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

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Report progress (MB read, MB/s) on standard error about once a second. Default: on when standard error is a terminal.")
    var progress: Bool = isatty(2) == 1

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
            let meter = progress ? ProgressMeter(path: path) : nil
            defer { meter?.finish() }
            do { try replay.read(path: path, progress: meter.map { m in { m.update(bytes: $0, of: $1) } }) } catch {
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
    func write(bytes: UnsafeRawBufferPointer) {
        guard bytes.count < 1 << 16 else {
            // A sink's whole chunk: written as it is, not copied once more.
            flush()
            writeAll(bytes)
            return
        }
        buffer.append(contentsOf: bytes)
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
        buffer.withUnsafeBytes { writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }
    private func writeAll(_ p: UnsafeRawBufferPointer) {
        var off = 0
        while off < p.count {
            let n = Glibc.write(1, p.baseAddress! + off, p.count - off)
            if n <= 0 { if errno == EINTR { continue }; return }
            off += n
        }
    }
    deinit { flush() }
}

/// One line on standard error, rewritten in place: `FILE: 512/2048 MB (25%), 1650 MB/s`.
final class ProgressMeter {
    private let path: String
    private let start = ContinuousClock.now
    private var last = ContinuousClock.now
    private var shown = false
    private var bytes = 0
    private var size: Int?

    init(path: String) { self.path = path }

    func update(bytes: Int, of size: Int?) {
        self.bytes = bytes
        self.size = size
        let now = ContinuousClock.now
        guard now - last >= .seconds(1) else { return }
        last = now
        show(final: false)
    }

    func finish() { show(final: true) }

    private func show(final: Bool) {
        shown = true
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let mb = Double(bytes) / 1e6
        var text = "\r\(path): \(Int(mb))"
        if let size, size > 0 { text += "/\(size / 1_000_000) MB (\(bytes * 100 / size)%)" } else { text += " MB" }
        if seconds > 0 { text += ", \(Int(mb / seconds)) MB/s" }
        if !final, seconds > 0, let size, size > bytes, bytes > 0 {
            text += ", ETA \(Int(Double(size - bytes) / (Double(bytes) / seconds)) + 1) s"
        }
        text += final ? "\n" : "   "
        text.withCString { p in _ = Glibc.write(2, p, strlen(p)) }
    }
}
