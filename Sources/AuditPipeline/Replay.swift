// Offline replay of audit logs: lines -> records -> events -> output.
// Bad lines are reported as FILE:LINE: what is wrong, and skipped.

import AuditCodec

public enum ReplayFormat: String, CaseIterable, Sendable {
    case raw, json, summary
}

public struct ReplaySummary: Sendable, Equatable {
    public var records = 0
    public var events = 0
    public var errors = 0
    public var lost = 0
    public var comments = 0
    public var bytes = 0
    /// `records=N events=N errors=N lost=N` (lost = sequence gaps + dropped)
    public var line: String { "records=\(records) events=\(events) errors=\(errors) lost=\(lost)" }
}

/// Where replay output and diagnostics go; tests collect them in memory.
public protocol ReplayOutput: AnyObject {
    func write(_ text: String)
    func diagnostic(_ text: String)
}

public final class Replay {
    public let format: ReplayFormat
    private let output: ReplayOutput
    private var assembler: EventAssembler!
    private var summary = ReplaySummary()
    /// Rebuilds the registry from the trail and attributes each event; nil leaves
    /// events as read (the summary form needs no attribution).
    public let attributor: TrailAttributor?

    public init(format: ReplayFormat, output: ReplayOutput, timeoutMilliseconds: UInt64 = 2000,
                attributor: TrailAttributor? = nil) {
        self.format = format
        self.output = output
        self.attributor = attributor ?? (format == .summary ? nil : TrailAttributor())
        let needsEvents = format != .summary || attributor != nil
        assembler = EventAssembler(timeoutMilliseconds: timeoutMilliseconds, ordered: true) { [unowned self] view in
            if needsEvents { self.handle(view.makeEvent()) }
        }
    }

    /// Reads one file ("-" = standard input) into the replay; `progress` is told the
    /// bytes read so far and the file's size (nil when unknown) after every chunk.
    public func read(path: String, progress: ((Int, Int?) -> Void)? = nil) throws {
        let reader = try LogReader(path: path)
        if let progress {
            let size = reader.size
            reader.onChunk = { progress($0, size) }
        }
        // Hot loop: hold the assembler in a local so the loop does no reference counting.
        let assembler: EventAssembler = self.assembler
        var comments = 0
        try reader.forEachLine { line, number in
            guard let first = line.first else { return }
            if first == UInt8(ascii: "#") { comments += 1; return }
            if let error = assembler.push(line: line) { reportError(error, path: path, lineNumber: number) }
        }
        summary.comments += comments
        summary.bytes += reader.bytesRead
    }

    /// Feeds one line; `#` comment lines and blank lines are skipped.
    @inline(__always)
    public func feed(line: UnsafeRawBufferPointer, path: String, lineNumber: Int) {
        guard let first = line.first else { return }
        if first == UInt8(ascii: "#") { summary.comments += 1; return }
        if let error = assembler.push(line: line) { reportError(error, path: path, lineNumber: lineNumber) }
    }

    private func reportError(_ error: AuditParseError, path: String, lineNumber: Int) {
        summary.errors += 1
        output.diagnostic("\(path):\(lineNumber): \(error)")
    }

    /// Ends the input: hands out every held event and returns the counts.
    @discardableResult
    public func finish() -> ReplaySummary {
        assembler.finish()
        attributor?.finish()
        let c = assembler.counters
        summary.records = c.records
        summary.events = c.events
        summary.lost = c.lost
        if format == .summary { output.write(summary.line + "\n") }
        return summary
    }

    public var counters: AssemblyCounters { assembler.counters }

    private func handle(_ event: AuditEvent) {
        var event = event
        var contid: String? = nil
        if let attributor {
            (event, contid) = attributor.attribute(event)
            _ = attributor.registry.takeRecords()  // the trail already has the daemon's records
        } else {
            contid = EventAnnotator.existingChain(event)
        }
        switch format {
        case .summary: break
        case .json: output.write(EventJSON.encode(event, contid: contid) + "\n")
        case .raw:
            var s = ""
            for r in event.records { s += r.line; s += "\n" }
            output.write(s)
        }
    }
}
