import AuditCodec
import AuditPipeline
import ContainerEngine
import LinuxAudit

/// The live path of one batch of records: the proc connector drained first (every
/// FORK behind a record is known by then), then assembled into events, attributed
/// from the registry, filtered by the rules, written to the host log. Records of
/// contid's own come back here and are settled with the ledger.
final class LiveEventPath {
    struct Counters: Equatable {
        var eventsSeen = 0
        /// Events of contidd's tracking rules: state only, never written.
        var trackingEvents = 0
        var eventsFiltered = 0
        var writeErrors = 0
    }

    private let registry: ContainerRegistry
    private let tracker: ProcessTracker
    private let ledger: OwnRecordLedger
    private let log: HostLogWriter
    private let clock: TimeSource
    private let graceMilliseconds: UInt64
    private let ownPID: Int32
    var ruleFilter = ContainerRuleFilter()
    private(set) var assembler: EventAssembler!
    /// The newest record time of this machine's stream (ms): releases held exits.
    private(set) var streamMs: UInt64 = 0
    private(set) var counters = Counters()
    private let trackingKeyBytes = Array(" key=\"\(AuditRule.trackingKey)\"".utf8)

    init(registry: ContainerRegistry, tracker: ProcessTracker, ledger: OwnRecordLedger, log: HostLogWriter,
         clock: TimeSource, graceMilliseconds: Int, ownPID: Int32) {
        self.registry = registry
        self.tracker = tracker
        self.ledger = ledger
        self.log = log
        self.clock = clock
        self.graceMilliseconds = UInt64(graceMilliseconds)
        self.ownPID = ownPID
        assembler = EventAssembler(timeoutMilliseconds: 2000) { [unowned self] view in self.handle(view) }
    }

    /// Drains the connector, then assembles the batch's records (and empties it).
    func process(_ batch: RecordBatch) {
        guard !batch.isEmpty else { return }
        tracker.drain()
        let assembler = self.assembler!
        // The stream clock moves only on this machine's records (no node=) and never past
        // the local clock by more than grace + 1 s (a remote clock, or ours stepped back:
        // a record from "the future" would release every held exit at once).
        let limit = clock.wallMilliseconds + graceMilliseconds + 1000
        if streamMs > limit { streamMs = 0 }
        batch.forEach { line in
            switch RecordScanner.scan(line) {
            case .success(let h):
                let t = h.time.totalMilliseconds
                if t > streamMs, t <= limit, h.node.isEmpty, !h.type.isDaemonRecord { streamMs = t }
                assembler.push(line: line, header: h)
            case .failure(let e):
                Log.warning("unreadable record (\(e)): \(String(decoding: line.prefix(120), as: UTF8.self))")
            }
        }
        batch.removeAll()
        assembler.drain()
    }

    /// The stream is idle: events still open are completed by the wall clock.
    func advanceIdleClock() {
        let wall = clock.wallMilliseconds
        assembler.advanceClock(to: AuditTime(seconds: wall / 1000, milliseconds: UInt16(wall % 1000)))
    }

    func finish() { assembler.finish() }

    private func handle(_ view: AuditEventView) {
        counters.eventsSeen += 1
        var syscallIndex = -1
        for i in 0..<view.recordCount where view.header(i).type == .syscall {
            syscallIndex = i
            break
        }
        if syscallIndex >= 0 {
            let h = view.header(syscallIndex)
            var pid: Int32 = 0, ppid: Int32 = 0
            var tracking = false
            view.withRecordBytes(syscallIndex) { bytes in
                let body = UnsafeRawBufferPointer(rebasing: bytes[Int(h.bodyStart)..<Int(h.bodyEnd)])
                pid = Int32(truncatingIfNeeded: FieldScan.integer(" pid=", in: body) ?? 0)
                ppid = Int32(truncatingIfNeeded: FieldScan.integer(" ppid=", in: body) ?? 0)
                tracking = FieldScan.contains(trackingKeyBytes, in: body)
            }
            if pid > 0, registry.chainBytes(of: pid) == nil, registry.process(pid) == nil {
                tracker.discover(pid: pid, ppid: ppid)
            }
            if tracking {
                counters.trackingEvents += 1
                return
            }
        }
        var event = view.makeEvent()
        if syscallIndex < 0, let first = event.records.first, (2900...2908).contains(first.type.rawValue) {
            if let own = HostLogForm.unwrapOwnRecord(first, ownPID: ownPID) {
                guard ledger.cameBack(own) else { return }
                event.records[0] = own
                write(event)
                return
            }
        }
        let annotated = EventAnnotator.annotate(event, registry: registry)
        if !ruleFilter.isEmpty, let s = event.first(.syscall), let pid = s.pid {
            if !ruleFilter.admits(key: s.key, chain: registry.chain(of: pid)) {
                counters.eventsFiltered += 1
                return
            }
        }
        write(annotated.event)
    }

    func write(_ event: AuditEvent) {
        do { try log.write(event) } catch { countWriteError(error) }
    }

    func write(_ record: AuditRecord) {
        do { try log.write(record) } catch { countWriteError(error) }
    }

    func flush() {
        do { try log.flush() } catch { countWriteError(error) }
    }

    private func countWriteError(_ error: any Error) {
        counters.writeErrors += 1
        if counters.writeErrors == 1 || counters.writeErrors % 1000 == 0 {
            Log.error("host log: \(error) (\(counters.writeErrors) write errors)")
        }
    }
}
