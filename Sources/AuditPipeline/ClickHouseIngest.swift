// `contid ingest`: audit logs into the fleet store, attributed exactly as
// `contid replay` attributes them (the trail rebuilds the registry; held events wait
// for the record that names their ancestor), one row per event through ClickHouseSink.

import AuditCodec

public struct IngestSummary: Sendable, Equatable {
    public var records = 0
    public var events = 0
    public var errors = 0
    /// Serials missing between those seen (sequence gaps).
    public var lost = 0
    public var sink = ClickHouseSinkCounters()
    /// Rows still in the spool at the end (the server did not come back in time).
    public var rowsSpooled = 0
    public var line: String {
        "records=\(records) events=\(events) errors=\(errors) lost=\(lost) rows=\(sink.rowsSent)"
            + " batches=\(sink.batchesSent + sink.batchesResent) spooled=\(sink.batchesSpooled) rows_lost=\(sink.rowsLost)"
            + (rowsSpooled > 0 ? " rows_still_spooled=\(rowsSpooled)" : "")
    }
}

public final class ClickHouseIngest {
    public let sink: ClickHouseSink
    public let pipeline: EventPipeline
    public let attributor: TrailAttributor
    private var summary = IngestSummary()
    /// Bad lines, as `FILE:LINE: what is wrong`.
    public var onDiagnostic: ((String) -> Void)?

    public init(sink: ClickHouseSink, timeoutMilliseconds: UInt64 = 2000, holds: Bool = true) {
        self.sink = sink
        attributor = TrailAttributor()
        pipeline = EventPipeline(timeoutMilliseconds: timeoutMilliseconds, ordered: true,
                                 attribution: TrailAttribution(attributor, holds: holds), sinks: [sink])
    }

    /// Reads one file ("-" = standard input); `progress` as `Replay.read`'s.
    public func read(path: String, progress: ((Int, Int?) -> Void)? = nil) throws {
        let reader = try LogReader(path: path)
        let size = reader.size
        let pipeline = self.pipeline
        // After each chunk: a batch that is old enough goes (the size limit sends the rest).
        reader.onChunk = { bytes in
            progress?(bytes, size)
            try? pipeline.flush()
        }
        let assembler = pipeline.eventAssembler
        try reader.forEachLine { line, number in
            guard let first = line.first, first != UInt8(ascii: "#") else { return }
            if let error = assembler.push(line: line) {
                summary.errors += 1
                onDiagnostic?("\(path):\(number): \(error)")
            }
        }
    }

    /// Ends the input: every held event goes out, the last batch is sent, and the spool
    /// is sent until it is empty or `drainFor` has passed.
    public func finish(drainFor: Duration) -> IngestSummary {
        pipeline.finish()
        attributor.finish()
        _ = sink.drain(until: .now + drainFor)
        let c = pipeline.counters
        summary.records = c.records
        summary.events = c.events
        summary.lost = c.lost
        summary.sink = sink.counters
        summary.rowsSpooled = sink.spooledRows
        return summary
    }
}
