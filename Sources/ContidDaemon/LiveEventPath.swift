import AuditCodec
import AuditPipeline
import ContainerEngine
import LinuxAudit

/// The live path of one batch of records: the proc connector drained first (every
/// FORK behind a record is known by then), then the shared `EventPipeline`:
/// assembled, attributed from the registry (`LiveAttribution`), filtered by the
/// rules (`ContainerRuleStep`), routed (`Router`: the host log and the other
/// destinations). Events stay borrowed from the batch to the sinks: nothing is
/// allocated per event in the steady state.
final class LiveEventPath {
    struct Counters: Equatable {
        var eventsSeen = 0
        /// Events of contidd's tracking rules: state only, never written.
        var trackingEvents = 0
        var eventsFiltered = 0
        var writeErrors = 0
    }

    private let tracker: ProcessTracker
    private let log: HostLogWriter
    let router: Router
    private let clock: TimeSource
    private let graceMilliseconds: UInt64
    private let attribution: LiveAttribution
    private let ruleStep: ContainerRuleStep
    private(set) var pipeline: EventPipeline!
    /// The newest record time of this machine's stream (ms): releases held exits.
    private(set) var streamMs: UInt64 = 0
    private var writeErrors = 0

    /// `log`: the host log, for contid's own records written directly; `router` holds it
    /// among its host sinks.
    init(registry: ContainerRegistry, tracker: ProcessTracker, ledger: OwnRecordLedger, log: HostLogWriter, router: Router,
         clock: TimeSource, graceMilliseconds: Int, ownPID: Int32) {
        self.tracker = tracker
        self.log = log
        self.router = router
        self.clock = clock
        self.graceMilliseconds = UInt64(graceMilliseconds)
        attribution = LiveAttribution(registry: registry, tracker: tracker, ledger: ledger, ownPID: ownPID)
        ruleStep = ContainerRuleStep(rules: ContainerRuleFilter()) { registry.chain(of: $0) }
        pipeline = EventPipeline(timeoutMilliseconds: 2000, attribution: attribution, filter: ruleStep, sinks: [router])
        pipeline.onSinkError = { [unowned self] in countWriteError($0) }
    }

    var ruleFilter: ContainerRuleFilter {
        get { ruleStep.rules }
        set { ruleStep.rules = newValue }
    }

    var assemblyCounters: AssemblyCounters { pipeline.counters }

    var counters: Counters {
        Counters(eventsSeen: pipeline.events, trackingEvents: attribution.trackingEvents,
                 eventsFiltered: pipeline.eventsFiltered, writeErrors: writeErrors)
    }

    /// Drains the connector, then assembles the batch's records (and empties it).
    func process(_ batch: RecordBatch) {
        guard !batch.isEmpty else { return }
        tracker.drain()
        let pipeline = self.pipeline!
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
                pipeline.push(line: line, header: h)
            case .failure(let e):
                Log.warning("unreadable record (\(e)): \(String(decoding: line.prefix(120), as: UTF8.self))")
            }
        }
        batch.removeAll()
        pipeline.drain()
    }

    /// The stream is idle: events still open are completed by the wall clock.
    func advanceIdleClock() {
        let wall = clock.wallMilliseconds
        pipeline.advanceClock(to: AuditTime(seconds: wall / 1000, milliseconds: UInt16(wall % 1000)))
    }

    func finish() { pipeline.finish() }

    /// contid's own record written directly (not through the kernel).
    func write(_ record: AuditRecord) {
        do { try log.write(record) } catch { countWriteError(error) }
    }

    func flush() {
        do { try pipeline.flush() } catch { countWriteError(error) }
    }

    private func countWriteError(_ error: any Error) {
        writeErrors += 1
        if writeErrors == 1 || writeErrors % 1000 == 0 {
            Log.error("host log: \(error) (\(writeErrors) write errors)")
        }
    }
}

/// Attribution on the live stream: chains from the registry the tracker keeps exact.
/// A task seen first in a record (its FORK was lost) is discovered from the record's
/// `ppid=`; tracking-rule events only feed state; contid's own records coming back
/// through the kernel are unwrapped to their SPEC form and settled with the ledger.
final class LiveAttribution: EventAttribution {
    let registry: ContainerRegistry
    private let tracker: ProcessTracker
    private let ledger: OwnRecordLedger
    private let ownPID: Int32
    private(set) var trackingEvents = 0
    private let trackingKey = Array("\"\(AuditRule.trackingKey)\"".utf8)

    init(registry: ContainerRegistry, tracker: ProcessTracker, ledger: OwnRecordLedger, ownPID: Int32) {
        self.registry = registry
        self.tracker = tracker
        self.ledger = ledger
        self.ownPID = ownPID
    }

    func observe(_ event: AuditEventView, annotation: EventAnnotation) -> Bool {
        let count = event.recordCount
        for i in 0..<count where event.header(i).type == .syscall {
            let h = event.header(i)
            let tracking: Bool = event.withRecordBytes(i) { line in
                let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
                let pid = Int32(truncatingIfNeeded: FieldScanner.integer("pid", in: body) ?? 0)
                if pid > 0, registry.chainBytes(of: pid) == nil, registry.process(pid) == nil {
                    tracker.discover(pid: pid, ppid: Int32(truncatingIfNeeded: FieldScanner.integer("ppid", in: body) ?? 0))
                }
                let tracking = trackingKey.withUnsafeBytes { FieldScanner.has("key", value: $0, in: body) }
                // unshare, setns, clone with CLONE_NEW*, clone3: namespace state (NS_CREATE, NS_CHANGE).
                if tracking { tracker.namespaceSyscall(SyscallFacts(body: body)) }
                return tracking
            }
            if tracking { trackingEvents += 1 }
            return !tracking
        }
        guard count > 0, event.header(0).type.isContidOwnRecord else { return true }
        // Rare (one per registration): an owned copy is fine here.
        let first = event.withRecordBytes(0) { AuditRecord(text: Array($0), header: event.header(0)) }
        guard let own = HostLogForm.unwrapOwnRecord(first, ownPID: ownPID) else { return true }
        guard ledger.cameBack(own) else { return false }  // written directly already
        annotation.replace(record: 0, with: own.text, header: own.header)
        return true
    }

    @inline(__always)
    func chainBytes(of pid: Int32) -> [UInt8]? { registry.chainBytes(of: pid) }
}
