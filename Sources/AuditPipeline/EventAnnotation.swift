// What attribution adds to one event (SPEC §6), kept beside the borrowed event
// instead of copying it: the records that get ` record=N`, the CONTAINER_ID
// records `record=N contid=<chain>` that join the event, and the task's chain.
// One instance is reused for every event; its arrays keep their capacity, so the
// steady state allocates nothing. Sinks write the annotated event with
// `appendLines`, straight into their own buffer.

import AuditCodec

public final class EventAnnotation {
    /// One ` record=N` link: record `record` gets it, and a CONTAINER_ID record with
    /// the chain at `chain` (offsets into `arena`) joins the event.
    struct Link {
        var record: Int
        var chainStart: Int
        var chainCount: Int
    }
    /// The per-event state, in raw memory: stored class properties would pay a dynamic
    /// exclusivity check on every access, several per event.
    struct Store {
        var links: [Link] = []
        /// A record replaced by another line (contid's own records, unwrapped): offsets into `arena`.
        var replacements: [(record: Int, start: Int, count: Int, header: RecordHeader)] = []
        /// Chains and replacement lines.
        var arena: [UInt8] = []
        /// The task's chain in `arena`, or nil.
        var chainRange: Range<Int>?
    }
    private let store: UnsafeMutablePointer<Store>

    /// `reserve`: room for the usual event up front (one long-lived instance per pipeline);
    /// without it a throw-away instance allocates only what an event needs.
    public init(reserve: Bool = false) {
        store = .allocate(capacity: 1)
        store.initialize(to: Store())
        guard reserve else { return }
        store.pointee.links.reserveCapacity(8)
        store.pointee.replacements.reserveCapacity(2)
        store.pointee.arena.reserveCapacity(1024)
    }

    deinit {
        store.deinitialize(count: 1)
        store.deallocate()
    }

    public func reset() {
        store.pointee.links.removeAll(keepingCapacity: true)
        store.pointee.replacements.removeAll(keepingCapacity: true)
        store.pointee.arena.removeAll(keepingCapacity: true)
        store.pointee.chainRange = nil
    }

    /// True when nothing is added or replaced.
    public var isEmpty: Bool { store.pointee.links.isEmpty && store.pointee.replacements.isEmpty }
    /// The CONTAINER_ID records added.
    public var linkCount: Int { store.pointee.links.count }

    /// The task's chain as printed (`4,^2,^1`), borrowed; nil when it has none.
    public func withChain<R>(_ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard let r = store.pointee.chainRange else { return try body(nil) }
        return try store.pointee.arena.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[r])) }
    }

    /// The task's chain as a String (cold paths: JSON).
    public var chain: String? { withChain { $0.map { String(decoding: $0, as: UTF8.self) } } }

    /// Replaces record `index` by `line` (whose header is `header`) in what sinks write.
    public func replace(record index: Int, with line: [UInt8], header: RecordHeader) {
        let start = store.pointee.arena.count
        store.pointee.arena += line
        store.pointee.replacements.append((index, start, line.count, header))
    }

    // MARK: planning

    /// Computes the links of `event` as `EventAnnotator.annotate` does: the SYSCALL record
    /// (or a user message) of a task with an ID, and each OBJ_PID target with an ID. An event
    /// that already carries CONTAINER_ID records (a contid log read back) gets no links; its
    /// chain is the one linked to record=1, else the first.
    @inline(__always)
    public func plan<E: AuditRecordSequence>(_ event: E, chainOf lookup: (Int32) -> [UInt8]?) {
        let count = event.recordCount
        guard count > 0 else { return }
        var task = -1
        var hasObjects = false
        for i in 0..<count {
            switch event.header(i).type {
            case .containerID:
                takeExistingChain(event)
                return
            case .syscall where task < 0: task = i
            case .objPID: hasObjects = true
            default: break
            }
        }
        if task < 0, event.header(0).type.isUserMessage { task = 0 }
        if task >= 0, let pid = Self.integer("pid", of: task, in: event), let chain = lookup(pid) {
            let start = store.pointee.arena.count
            store.pointee.arena += chain
            store.pointee.chainRange = start..<store.pointee.arena.count
            store.pointee.links.append(Link(record: task, chainStart: start, chainCount: chain.count))
        }
        if hasObjects {
            for i in 0..<count where event.header(i).type == .objPID {
                guard let opid = Self.integer("opid", of: i, in: event), let chain = lookup(opid) else { continue }
                let start = store.pointee.arena.count
                store.pointee.arena += chain
                store.pointee.links.append(Link(record: i, chainStart: start, chainCount: chain.count))
            }
        }
    }

    @inline(__always)
    static func integer<E: AuditRecordSequence>(_ name: StaticString, of i: Int, in event: E) -> Int32? {
        let h = event.header(i)
        return event.withRecordBytes(i) { line in
            FieldScanner.integer(name, in: UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)]))
        }.flatMap { Int32(exactly: $0) }
    }

    private func takeExistingChain<E: AuditRecordSequence>(_ event: E) {
        var chosen: Range<Int>? = nil
        var chosenRecord = -1
        for i in 0..<event.recordCount where event.header(i).type == .containerID {
            let h = event.header(i)
            let (value, linkedToFirst) = event.withRecordBytes(i) { line -> (Range<Int>?, Bool) in
                let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
                let one: [UInt8] = [UInt8(ascii: "1")]
                let first = one.withUnsafeBytes { FieldScanner.has("record", value: $0, in: body) }
                return (FieldScanner.valueRange(of: "contid", in: body).map { ($0.lowerBound + Int(h.bodyStart))..<($0.upperBound + Int(h.bodyStart)) }, first)
            }
            if chosenRecord < 0 || linkedToFirst {
                chosen = value
                chosenRecord = i
                if linkedToFirst { break }
            }
        }
        guard chosenRecord >= 0, let r = chosen else { return }
        let start = store.pointee.arena.count
        event.withRecordBytes(chosenRecord) { store.pointee.arena.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[r])) }
        store.pointee.chainRange = start..<store.pointee.arena.count
    }

    // MARK: writing

    /// Calls `body` with each line of the annotated event, in order (EOE left out, as
    /// auditd does; the assembler keeps none), then each CONTAINER_ID line. A line is
    /// handed out in up to three parts (before ` record=N`, the link, after it) to copy
    /// nothing: `body(parts, header)`; the header is the record's own, not moved.
    @inline(__always)
    public func forEachLine<E: AuditRecordSequence>(
        of event: E, scratch: inout [UInt8], skipEOE: Bool = true,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) rethrows {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        let count = event.recordCount
        for i in 0..<count {
            let h = event.header(i)
            if skipEOE, h.type == .eoe { continue }
            if let rep = store.pointee.replacements.first(where: { $0.record == i }) {
                try store.pointee.arena.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[rep.start..<(rep.start + rep.count)]), empty, empty) }
                continue
            }
            guard let n = store.pointee.links.firstIndex(where: { $0.record == i }) else {
                try event.withRecordBytes(i) { try body($0, empty, empty) }
                continue
            }
            scratch.removeAll(keepingCapacity: true)
            Self.appendRecordField(n + 1, to: &scratch)
            try event.withRecordBytes(i) { line in
                try scratch.withUnsafeBytes { link in
                    try body(UnsafeRawBufferPointer(rebasing: line[..<Int(h.bodyEnd)]), link,
                             UnsafeRawBufferPointer(rebasing: line[Int(h.bodyEnd)...]))
                }
            }
        }
        guard !store.pointee.links.isEmpty else { return }
        let template = event.header(0)
        for (k, link) in store.pointee.links.enumerated() {
            scratch.removeAll(keepingCapacity: true)
            event.withRecordBytes(0) { Self.appendContainerIDHeader(like: template, line: $0, to: &scratch) }
            Self.appendContainerIDBody(record: k + 1, to: &scratch)
            store.pointee.arena.withUnsafeBytes { scratch.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[link.chainStart..<(link.chainStart + link.chainCount)])) }
            try scratch.withUnsafeBytes { try body($0, empty, empty) }
        }
    }

    /// Appends every line of the annotated event to `out`, each followed by a newline.
    @inline(__always)
    public func appendLines<E: AuditRecordSequence>(of event: E, to out: inout [UInt8], scratch: inout [UInt8]) {
        forEachLine(of: event, scratch: &scratch) { a, b, c in
            out.append(contentsOf: a)
            if !b.isEmpty { out.append(contentsOf: b) }
            if !c.isEmpty { out.append(contentsOf: c) }
            out.append(0x0A)
        }
    }

    /// The annotated event as an owned value (cold paths: JSON, `EventAnnotator.annotate`).
    public func makeEvent(_ event: AuditEventView) -> AuditEvent {
        var e = event.makeEvent()
        e.records = records(of: e)
        return e
    }

    /// The records of the annotated event, owned; `event`'s own records when nothing is added.
    public func records(of event: AuditEvent) -> [AuditRecord] {
        guard !isEmpty else { return event.records }
        var out: [AuditRecord] = []
        out.reserveCapacity(event.records.count + store.pointee.links.count)
        var scratch: [UInt8] = []
        var i = 0
        forEachLine(of: event, scratch: &scratch, skipEOE: false) { a, b, c in
            var text = Array(a)
            text += b
            text += c
            let header: RecordHeader
            if i < event.records.count {
                if let rep = store.pointee.replacements.first(where: { $0.record == i }) {
                    header = rep.header
                } else {
                    var h = event.records[i].header
                    h.bodyEnd += Int32(b.count)
                    h.length += Int32(b.count)
                    header = h
                }
            } else {
                // A CONTAINER_ID line: the template's header, moved (no need to scan the line again).
                let t = event.records[0].header
                let typeStart = Int(t.typeName.lowerBound)
                let bodyStart = typeStart + 12 + Int(t.bodyStart - t.typeName.upperBound) + (t.hasColon ? 0 : 1)
                header = RecordHeader(
                    type: .containerID, node: t.node, typeName: Int32(typeStart)..<Int32(typeStart + 12),
                    time: t.time, serial: t.serial, hasColon: true,
                    bodyStart: Int32(bodyStart), bodyEnd: Int32(text.count), length: Int32(text.count))
            }
            out.append(AuditRecord(text: text, header: header))
            i += 1
        }
        return out
    }

    // MARK: the added text

    @inline(__always)
    static func appendRecordField(_ n: Int, to out: inout [UInt8]) {
        let f: StaticString = " record="
        f.withUTF8Buffer { out.append(contentsOf: $0) }
        appendDecimal(n, to: &out)
    }

    /// `[node=N ]type=CONTAINER_ID msg=audit(T:S):` stamped like the template record.
    @inline(__always)
    static func appendContainerIDHeader(like h: RecordHeader, line: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        if !h.node.isEmpty {
            out.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[..<Int(h.typeName.lowerBound)]))
        } else {
            let t: StaticString = "type="
            t.withUTF8Buffer { out.append(contentsOf: $0) }
        }
        let name: StaticString = "CONTAINER_ID"
        name.withUTF8Buffer { out.append(contentsOf: $0) }
        out.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[Int(h.typeName.upperBound)..<Int(h.bodyStart)]))
        if !h.hasColon { out.append(UInt8(ascii: ":")) }
    }

    @inline(__always)
    static func appendContainerIDBody(record n: Int, to out: inout [UInt8]) {
        let f: StaticString = " record="
        f.withUTF8Buffer { out.append(contentsOf: $0) }
        appendDecimal(n, to: &out)
        let c: StaticString = " contid="
        c.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendDecimal(_ v: Int, to out: inout [UInt8]) {
        if v < 10 { out.append(UInt8(ascii: "0") + UInt8(v)); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        var x = v
        withUnsafeMutableBytes(of: &digits) { d in
            while x > 0 { d[n] = UInt8(ascii: "0") + UInt8(x % 10); x /= 10; n += 1 }
            while n > 0 { n -= 1; out.append(d[n]) }
        }
    }
}
