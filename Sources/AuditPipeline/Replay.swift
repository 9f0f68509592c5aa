// Offline replay of audit logs on the event pipeline: lines -> records -> events
// -> attribution -> output sinks. Bad lines are reported as FILE:LINE: what is
// wrong, and skipped.

import AuditCodec
import ContainerEngine

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
    /// Output as bytes (the raw form's hot path); by default passed on as text.
    func write(bytes: UnsafeRawBufferPointer)
    func diagnostic(_ text: String)
}

extension ReplayOutput {
    public func write(bytes: UnsafeRawBufferPointer) { write(String(decoding: bytes, as: UTF8.self)) }
}

public final class Replay {
    public let format: ReplayFormat
    private let output: ReplayOutput
    public let pipeline: EventPipeline
    private var summary = ReplaySummary()
    /// Rebuilds the registry from the trail and attributes each event; nil leaves
    /// events as read (the summary form needs no attribution).
    public let attributor: TrailAttributor?

    /// `holds`: an event whose task's ancestor the trail has not named yet waits for the
    /// record that names it (TrailAttributor's held attribution); false attributes each
    /// event as the trail stands when it is read.
    public init(format: ReplayFormat, output: ReplayOutput, timeoutMilliseconds: UInt64 = 2000,
                attributor: TrailAttributor? = nil, holds: Bool = true) {
        self.format = format
        self.output = output
        let attributor = attributor ?? (format == .summary ? nil : TrailAttributor())
        self.attributor = attributor
        let sinks: [EventSink]
        switch format {
        case .summary: sinks = []
        case .raw: sinks = [RawLinesSink(output: output)]
        case .json:
            let registry = attributor?.registry
            sinks = [JSONLinesSink(output: output) { registry?.labels(of: $0) ?? ContainerLabels() }]
        }
        pipeline = EventPipeline(timeoutMilliseconds: timeoutMilliseconds, ordered: true,
                                 attribution: attributor.map { TrailAttribution($0, holds: holds) }, sinks: sinks)
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
        let assembler = pipeline.eventAssembler
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
        if let error = pipeline.push(line: line) { reportError(error, path: path, lineNumber: lineNumber) }
    }

    private func reportError(_ error: AuditParseError, path: String, lineNumber: Int) {
        summary.errors += 1
        try? pipeline.flush()  // the events before the bad line are written before its report
        output.diagnostic("\(path):\(lineNumber): \(error)")
    }

    /// Ends the input: hands out every held event and returns the counts.
    @discardableResult
    public func finish() -> ReplaySummary {
        pipeline.finish()
        attributor?.finish()
        try? pipeline.flush()
        let c = pipeline.counters
        summary.records = c.records
        summary.events = c.events
        summary.lost = c.lost
        if format == .summary { output.write(summary.line + "\n") }
        return summary
    }

    public var counters: AssemblyCounters { pipeline.counters }
}
