// One event pipeline for `contid replay` and `contidd`:
//
//   record lines -> EventAssembler -> attribution (learn; chain lookup) -> EventAnnotation
//                -> filter -> sinks (host log, JSON lines, replay's raw form, ...)
//
// Events stay borrowed (`AuditEventView`) from assembly to the sinks, and the
// annotation is computed beside them in one reused `EventAnnotation`: with RAW
// sinks the steady state allocates nothing per event. Sinks follow go-libaudit's
// `Stream { ReassemblyComplete(msgs); EventsLost(count) }`: accept an event, learn
// of losses, flush, close.
//
// How contidd plugs in (the daemon keeps its sources, registry and tracker):
//   let pipeline = EventPipeline(timeoutMilliseconds: 2000, ordered: false,
//       attribution: <a class whose observe(_:annotation:) discovers unknown tasks and
//                    returns false for tracking-rule events; whose chainBytes(of:) is
//                    registry.chainBytes(of:); own records unwrapped there with
//                    annotation.replace(record: 0, with:header:)>,
//       filter: ContainerRuleStep(rules: ruleFilter, chain: { registry.chain(of: $0) }),
//       sinks: [hostLogWriter])
//   per record:   pipeline.push(line: line, header: header)   (the header already scanned)
//   per batch:    pipeline.drain(); pipeline.flush()
//   when idle:    pipeline.advanceClock(to: wallTime)
//   at the end:   pipeline.finish(); pipeline.close()
//   counters:     pipeline.counters (assembly), eventsDropped, eventsFiltered, sinkErrors

import AuditCodec
import ContainerEngine

/// A destination of events (the host log, JSON lines, replay's output; later routing,
/// readers, remote, ClickHouse).
public protocol EventSink: AnyObject {
    /// One event, borrowed for the call: write it with `annotation.forEachLine(of:)` /
    /// `appendLines(of:)` into the sink's own buffer.
    func accept(_ event: AuditEventView, annotation: EventAnnotation) throws
    /// Events lost before the pipeline (sequence gaps: serials never seen).
    func eventsLost(_ count: Int)
    /// Writes what is buffered (after each batch, and before close).
    func flush() throws
    /// Flushes and releases the destination.
    func close()
}

extension EventSink {
    public func eventsLost(_ count: Int) {}
    public func close() { try? flush() }
}

/// The attribution step: learns from each event, and names the chain of a task.
public protocol EventAttribution: AnyObject {
    /// Learns what the event says (replay: the trail's registrations and process facts;
    /// live: tasks not seen yet). Returns false when the event only feeds state and is not
    /// written (tracking-rule events). It may replace records through `annotation.replace`;
    /// an event with a replaced record gets no links.
    func observe(_ event: AuditEventView, annotation: EventAnnotation) -> Bool
    /// The printed chain of task `pid` (`4,^2,^1`), nil when it has no ID.
    func chainBytes(of pid: Int32) -> [UInt8]?
}

/// Attribution that may hold an event until the trail names what it needs (offline
/// replay: a process seen before the record that names its parent). The pipeline asks
/// `offer` first, on the borrowed event; only a refused one is copied and handed to
/// `hold`, and whatever it releases goes on through filter and sinks, in trail order.
public protocol HoldingAttribution: EventAttribution {
    /// Learns from the event; true: it goes on now. False: it must wait (nothing learnt).
    func offer(_ event: AuditEventView) -> Bool
    /// A refused event, owned; `release` gets each event that may go on, in order.
    func hold(_ event: AuditEvent, release: (AuditEvent) -> Void)
    /// End of input: every held event goes to `release`.
    func finish(release: (AuditEvent) -> Void)
}

/// The filter step: false drops the event (after attribution, before every sink).
public protocol EventFilter: AnyObject {
    func admits(_ event: AuditEventView, annotation: EventAnnotation) -> Bool
}

public final class EventPipeline {
    public let attribution: EventAttribution?
    /// The attribution when it holds events (offline replay), else nil.
    private let holding: HoldingAttribution?
    public let filter: EventFilter?
    public let sinks: [EventSink]
    private var assembler: EventAssembler!
    private let annotation = EventAnnotation(reserve: true)
    private var lostReported = 0

    /// Events handed out by the assembler.
    public var events: Int { assembler.counters.events }
    /// Events the attribution kept from the sinks (they only fed state).
    public private(set) var eventsDropped = 0
    /// Events the filter dropped.
    public private(set) var eventsFiltered = 0
    /// Failed `accept` calls; the last error is kept.
    public private(set) var sinkErrors = 0
    public private(set) var lastSinkError: Error?
    /// Told of every sink error (the daemon logs them).
    public var onSinkError: ((Error) -> Void)?

    /// `ordered`: events out in serial order per node (offline replay: the registry the
    /// trail rebuilds follows it); a live reader hands events out as they complete.
    public init(timeoutMilliseconds: UInt64 = 2000, ordered: Bool = false, attribution: EventAttribution? = nil,
                filter: EventFilter? = nil, sinks: [EventSink] = []) {
        self.attribution = attribution
        self.holding = attribution as? HoldingAttribution
        self.filter = filter
        self.sinks = sinks
        if attribution == nil && sinks.isEmpty {
            // Nothing reads the events (replay's summary): the assembler only counts.
            assembler = EventAssembler(timeoutMilliseconds: timeoutMilliseconds, ordered: ordered) { _ in }
        } else {
            assembler = EventAssembler(timeoutMilliseconds: timeoutMilliseconds, ordered: ordered) { [unowned self] view in
                self.handle(view)
            }
        }
    }

    public var counters: AssemblyCounters { assembler.counters }

    /// The assembler itself, for a hot loop that holds it in a local.
    public var eventAssembler: EventAssembler { assembler }

    // MARK: input

    /// One record whose header is already scanned.
    @inline(__always)
    public func push(line: UnsafeRawBufferPointer, header: RecordHeader) { assembler.push(line: line, header: header) }

    /// One line of text; returns the parse error for a bad line.
    @discardableResult @inline(__always)
    public func push(line: UnsafeRawBufferPointer) -> AuditParseError? { assembler.push(line: line) }

    /// Hands out what is complete or timed out (after each batch).
    public func drain() {
        assembler.drain()
        reportLoss()
    }

    /// Moves the clock (a live source while idle: wall time), then drains.
    public func advanceClock(to time: AuditTime) {
        assembler.advanceClock(to: time)
        reportLoss()
    }

    /// End of input: every held event goes out.
    public func finish() {
        assembler.finish()
        holding?.finish { held in held.withView { deliver($0) } }
        reportLoss()
    }

    /// Flushes every sink; the first error is thrown after all were tried.
    public func flush() throws {
        var first: Error?
        for s in sinks {
            do { try s.flush() } catch { if first == nil { first = error } }
        }
        if let first { throw first }
    }

    public func close() {
        for s in sinks { s.close() }
    }

    // MARK: one event

    @inline(__always)
    private func handle(_ view: AuditEventView) {
        if let holding {
            if holding.offer(view) {
                deliver(view)
            } else {
                holding.hold(view.makeEvent()) { held in held.withView { deliver($0) } }
            }
            return
        }
        let a = annotation
        a.reset()
        if let attribution {
            guard attribution.observe(view, annotation: a) else { eventsDropped &+= 1; return }
            if a.isEmpty { a.plan(view) { attribution.chainBytes(of: $0) } }
        } else {
            a.plan(view) { _ in nil }  // only a chain the event already carries
        }
        write(view, a)
    }

    /// An event a holding attribution let go on: annotated from the registry as it stands now.
    private func deliver(_ view: AuditEventView) {
        let a = annotation
        a.reset()
        if let attribution { a.plan(view) { attribution.chainBytes(of: $0) } }
        write(view, a)
    }

    @inline(__always)
    private func write(_ view: AuditEventView, _ a: EventAnnotation) {
        if let filter, !filter.admits(view, annotation: a) {
            eventsFiltered &+= 1
            return
        }
        for s in sinks {
            do { try s.accept(view, annotation: a) } catch {
                sinkErrors &+= 1
                lastSinkError = error
                onSinkError?(error)
            }
        }
    }

    private func reportLoss() {
        let lost = assembler.counters.lost
        guard lost != lostReported else { return }
        let delta = lost - lostReported  // negative when a gap was filled after all
        lostReported = lost
        if delta > 0 { for s in sinks { s.eventsLost(delta) } }
    }
}

// MARK: - the steps contid provides

/// Live attribution from a registry the caller keeps up to date (contidd: the
/// registry its tracker feeds). Learns nothing itself.
public final class RegistryAttribution: EventAttribution {
    public let registry: ContainerRegistry
    public init(registry: ContainerRegistry) { self.registry = registry }
    public func observe(_ event: AuditEventView, annotation: EventAnnotation) -> Bool { true }
    @inline(__always)
    public func chainBytes(of pid: Int32) -> [UInt8]? { registry.chainBytes(of: pid) }
}

/// Offline attribution: the trail rebuilds the registry (`TrailAttributor`). The
/// attributor learns from the SYSCALL record's facts (read from the borrowed bytes in
/// one walk), CONTAINER_OP, SET_CAPCONTID and CONTAINER_INFO records (owned copies: rare) and the
/// event's time; the annotation is then computed on the borrowed event from the
/// registry it updated. It holds (SPEC §5 exactness offline): an event whose task
/// descends from a pid the trail has not named yet waits, with every event after it,
/// until a record names that pid or the hold window closes (`TrailAttributor`'s rule);
/// `holds: false` attributes every event as the trail stands when it is read.
public final class TrailAttribution: HoldingAttribution {
    public let attributor: TrailAttributor
    public let holds: Bool
    public init(_ attributor: TrailAttributor, holds: Bool = true) {
        self.attributor = attributor
        self.holds = holds
    }

    /// The SYSCALL facts and registration records of an event.
    @inline(__always)
    private func facts(_ event: AuditEventView) -> (SyscallFacts?, [AuditRecord]) {
        var facts: SyscallFacts?
        var records: [AuditRecord] = []
        for i in 0..<event.recordCount {
            let h = event.header(i)
            if h.type == .syscall {
                if facts == nil {
                    facts = event.withRecordBytes(i) {
                        SyscallFacts(body: UnsafeRawBufferPointer(rebasing: $0[Int(h.bodyStart)..<Int(h.bodyEnd)]))
                    }
                }
            } else if h.type == .containerOp || h.type == .setCapContID || h.type == .containerInfo {
                // Registrations are rare: the only records copied.
                event.withRecordBytes(i) { records.append(AuditRecord(text: Array($0), header: h)) }
            }
        }
        return (facts, records)
    }

    public func observe(_ event: AuditEventView, annotation: EventAnnotation) -> Bool {
        learn(event)
        return true
    }

    @inline(__always)
    private func learn(_ event: AuditEventView) {
        let (facts, records) = facts(event)
        attributor.learn(time: event.time, syscall: facts, records: records)
        if attributor.registry.pendingRecordCount > 0 { _ = attributor.registry.takeRecords() }  // the trail has the daemon's
    }

    public func offer(_ event: AuditEventView) -> Bool {
        guard holds else { learn(event); return true }
        let (facts, records) = facts(event)
        return attributor.offer(time: event.time, syscall: facts, records: records)
    }

    public func hold(_ event: AuditEvent, release: (AuditEvent) -> Void) {
        attributor.hold(event, release: release)
    }

    public func finish(release: (AuditEvent) -> Void) {
        attributor.finishHeld(release: release)
    }

    @inline(__always)
    public func chainBytes(of pid: Int32) -> [UInt8]? { attributor.registry.chainBytes(of: pid) }
}

/// contidd's rule filter (`-F contid=` rules by key) as a pipeline step: reads the
/// SYSCALL record's pid and `key=` from the bytes (no tokenizing; a key of up to 15
/// bytes is a small String, no allocation).
public final class ContainerRuleStep: EventFilter {
    public var rules: ContainerRuleFilter
    private let chain: (Int32) -> ContainerChain

    public init(rules: ContainerRuleFilter, chain: @escaping (Int32) -> ContainerChain) {
        self.rules = rules
        self.chain = chain
    }

    public func admits(_ event: AuditEventView, annotation: EventAnnotation) -> Bool {
        guard !rules.isEmpty else { return true }
        for i in 0..<event.recordCount where event.header(i).type == .syscall {
            let h = event.header(i)
            return event.withRecordBytes(i) { line in
                let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
                guard let pid = FieldScanner.integer("pid", in: body).flatMap({ Int32(exactly: $0) }) else { return true }
                return rules.admits(key: Self.key(in: body), chain: chain(pid))
            }
        }
        return true
    }

    /// `key=` decoded as `AuditRecord.key` does: quoted text, hex decoded, nil for `(null)`.
    static func key(in body: UnsafeRawBufferPointer) -> String? {
        guard let r = FieldScanner.valueRange(of: "key", in: body) else { return nil }
        let v = UnsafeRawBufferPointer(rebasing: body[r])
        if let q = v.first, q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") {
            let end = v.count >= 2 && v.last == q ? v.count - 1 : v.count
            return String(decoding: UnsafeRawBufferPointer(rebasing: v[1..<end]), as: UTF8.self)
        }
        if v.elementsEqual("(null)".utf8) { return nil }
        let bytes = Array(v)
        return String(decoding: AuditText.unhex(bytes) ?? bytes, as: UTF8.self)
    }
}
