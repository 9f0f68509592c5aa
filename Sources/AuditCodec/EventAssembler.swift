// Groups records into events by (node, serial), as auparse and go-libaudit's
// reassembler do. An event is complete at EOE, at a standalone type, or when
// the stream clock (the newest record time seen) passes its time + timeout.
// Serials are tracked per node in a window indexed by serial, which makes the
// common case (dense, nearly ordered serials) O(1) without hashing; gaps that
// stay empty past the timeout are counted as lost.
//
// Completed events are handed out when the next record belongs to another
// event (or on drain/finish), so an auxiliary record that follows its event
// at once (CONTAINER_ID after a USER_* record in contid's own logs) joins it.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counters the assembler keeps; all monotonic.
public struct AssemblyCounters: Sendable, Equatable {
    public var records = 0
    public var events = 0
    /// Serials never seen between seen ones (each missing serial counts one).
    public var lost = 0
    /// Records that repeated a record already in their event, dropped.
    public var duplicates = 0
    /// Records that arrived after their event was handed out; handed out as events of their own.
    public var late = 0
    /// Jumps in serial too large to be gaps (a new boot, a concatenated log).
    public var resyncs = 0
    public init() {}
}

/// One assembled event, borrowed: valid only during the callback.
public struct AuditEventView {
    @usableFromInline let buffer: EventBuffer
    public let node: Int32
    public let serial: UInt32
    public let time: AuditTime
    /// True for records that arrived after their event was handed out.
    public let isLate: Bool
    let nodeNames: [[UInt8]]

    public var recordCount: Int { buffer.headers.count }
    public var nodeName: String? {
        node == 0 ? nil : String(decoding: nodeNames[Int(node)], as: UTF8.self)
    }
    /// The header of record i (offsets relative to the record's own line).
    public func header(_ i: Int) -> RecordHeader { buffer.headers[i] }
    /// The bytes of record i, borrowed.
    @inlinable
    public func withRecordBytes<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let start = buffer.starts[i]
        let h = buffer.headers[i]
        return try buffer.bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start..<(start + Int(h.length))])) }
    }
    /// An owned copy.
    public func makeEvent() -> AuditEvent {
        var records: [AuditRecord] = []
        records.reserveCapacity(recordCount)
        for i in 0..<recordCount {
            let start = buffer.starts[i]
            let h = buffer.headers[i]
            records.append(AuditRecord(text: Array(buffer.bytes[start..<(start + Int(h.length))]), header: h))
        }
        return AuditEvent(node: nodeName, serial: serial, time: time, records: records, isLate: isLate)
    }
}

/// Storage for one event's records, reused across events.
public final class EventBuffer {
    @usableFromInline var bytes: [UInt8] = []
    @usableFromInline var starts: [Int] = []
    @usableFromInline var headers: [RecordHeader] = []
    var hashes: [UInt64] = []
    init() {
        bytes.reserveCapacity(2048)
    }
    @inline(__always) func reset() {
        bytes.removeAll(keepingCapacity: true)
        starts.removeAll(keepingCapacity: true)
        headers.removeAll(keepingCapacity: true)
        hashes.removeAll(keepingCapacity: true)
    }
    @inline(__always) func append(_ line: UnsafeRawBufferPointer, header: RecordHeader, hash: UInt64) {
        starts.append(bytes.count)
        bytes.append(contentsOf: line)
        headers.append(header)
        hashes.append(hash)
    }
}

public final class EventAssembler {
    public typealias Sink = (AuditEventView) -> Void

    /// How long (stream time) an incomplete event or a gap waits. Default 2 s, as auparse.
    public let timeoutMilliseconds: UInt64
    public private(set) var counters = AssemblyCounters()
    private let sink: Sink

    private enum SlotState: UInt8 { case empty, open, complete, done, lost }
    /// A slot holds one serial; after the event is handed out the slot keeps its serial
    /// and record hashes until a newer serial reuses it, to recognise duplicates.
    private struct Slot {
        var serial: UInt32 = 0
        var state: SlotState = .empty
        var timeMs: UInt64 = 0
        var time = AuditTime(seconds: 0, milliseconds: 0)
    }
    /// One serial space: a node's kernel serials, or a node's auditd DAEMON_* serials.
    private struct Stream {
        var node: Int32
        var tracksGaps: Bool
        var started = false
        var base: UInt32 = 0          // oldest serial not yet retired
        var top: UInt32 = 0           // newest serial seen (base == top &+ 1: nothing held)
        var emptyUntil: UInt32 = 0    // serials in [base, emptyUntil) are known to be gaps
        var retiredAny = false        // until something retires, an earlier serial may lower the base
        var slots: [Slot]
        var buffers: [EventBuffer?]
    }

    private let window: UInt32
    private let mask: UInt32
    /// Ahead jumps up to this many serials are losses; larger ones restart the window.
    private let maxGap: UInt32 = 1 << 20
    private var streams: [Stream] = []
    private var streamIndex: [Int: Int] = [:]  // node << 1 | daemon -> stream
    private var nodeNames: [[UInt8]] = [[]]
    private var nodeIDs: [[UInt8]: Int32] = [:]
    private var lastNodeBytes: [UInt8] = []
    private var lastNodeID: Int32 = 0
    private var streamClock: UInt64 = 0
    /// Events completed but not yet handed out: (stream, serial).
    private var pending: [(Int, UInt32)] = []
    private var lastKey: (Int, UInt32) = (-1, 0)
    private let lateBuffer = EventBuffer()

    public init(timeoutMilliseconds: UInt64 = 2000, windowBits: Int = 14, sink: @escaping Sink) {
        precondition((4...24).contains(windowBits))
        self.timeoutMilliseconds = timeoutMilliseconds
        self.window = 1 << UInt32(windowBits)
        self.mask = (1 << UInt32(windowBits)) - 1
        self.sink = sink
    }

    // MARK: input

    /// Adds one line of text (no newline). Returns the parse error for a bad line.
    @discardableResult
    public func push(line: UnsafeRawBufferPointer) -> AuditParseError? {
        switch RecordScanner.scan(line) {
        case .success(let h):
            push(line: line, header: h)
            return nil
        case .failure(let e):
            return e
        }
    }

    /// Adds one record whose header is already scanned.
    public func push(line: UnsafeRawBufferPointer, header h: RecordHeader) {
        counters.records += 1
        let nodeID = h.node.isEmpty ? 0 : internNode(UnsafeRawBufferPointer(rebasing: line[Int(h.node.lowerBound)..<Int(h.node.upperBound)]))
        let si = stream(node: nodeID, daemon: h.type.isDaemonRecord)
        let serial = h.serial
        let tms = h.time.totalMilliseconds
        if tms > streamClock { streamClock = tms }

        // A record of another event: hand out what is complete first.
        if lastKey.0 != si || lastKey.1 != serial {
            flushPending()
            lastKey = (si, serial)
        }
        if h.type == .eoe {
            // EOE closes its event; it carries nothing else and auditd does not log it.
            let i = Int(serial & mask)
            if streams[si].started, isHeld(si, serial), streams[si].slots[i].state == .open {
                markComplete(si, i)
            }
            retire(si, force: false)
            return
        }
        let hash = Self.hash(line)
        guard let i = admit(si, serial: serial, time: h.time, timeMs: tms) else {
            handleLate(si, serial: serial, line: line, header: h, hash: hash)
            retire(si, force: false)
            return
        }
        let buf = streams[si].buffers[i]!
        if buf.hashes.contains(hash), containsSame(buf, line, hash) {
            counters.duplicates += 1
        } else {
            buf.append(line, header: h, hash: hash)
            if h.type.isStandalone, streams[si].slots[i].state == .open { markComplete(si, i) }
        }
        retire(si, force: false)
    }

    /// Hands out every complete event now, and any timed out (a live reader calls this after each batch).
    public func drain() {
        flushPending()
        for si in streams.indices { retire(si, force: false) }
    }

    /// Moves the stream clock (live sources: wall time), then drains.
    public func advanceClock(to time: AuditTime) {
        let t = time.totalMilliseconds
        if t > streamClock { streamClock = t }
        drain()
    }

    /// End of input: every open event is handed out; gaps between seen serials are lost.
    public func finish() {
        for si in streams.indices { retire(si, force: true) }
        flushPending()
    }

    /// Events held now (open or complete, not yet handed out).
    public var inFlight: Int {
        var n = 0
        for s in streams where s.started {
            var j = s.base
            while (s.top &- j) < 0x8000_0000 {
                let sl = s.slots[Int(j & mask)]
                if sl.serial == j, sl.state == .open || sl.state == .complete { n += 1 }
                j &+= 1
            }
        }
        return n
    }

    // MARK: streams and slots

    @inline(__always)
    private func internNode(_ name: UnsafeRawBufferPointer) -> Int32 {
        if name.elementsEqual(lastNodeBytes) { return lastNodeID }
        let bytes = Array(name)
        let id: Int32
        if let known = nodeIDs[bytes] { id = known } else {
            id = Int32(nodeNames.count)
            nodeNames.append(bytes)
            nodeIDs[bytes] = id
        }
        lastNodeBytes = bytes
        lastNodeID = id
        return id
    }

    @inline(__always)
    private func stream(node: Int32, daemon: Bool) -> Int {
        let key = Int(node) << 1 | (daemon ? 1 : 0)
        if let s = streamIndex[key] { return s }
        streams.append(Stream(node: node, tracksGaps: !daemon,
                              slots: Array(repeating: Slot(), count: Int(window)),
                              buffers: Array(repeating: nil, count: Int(window))))
        streamIndex[key] = streams.count - 1
        return streams.count - 1
    }

    /// True when serial is between base and top and its slot holds it.
    @inline(__always)
    private func isHeld(_ si: Int, _ serial: UInt32) -> Bool {
        let s = streams[si]
        guard (serial &- s.base) <= (s.top &- s.base), (s.top &- s.base) < 0x8000_0000 else { return false }
        let sl = s.slots[Int(serial & mask)]
        return sl.serial == serial && sl.state != .empty
    }

    /// Finds or opens the slot for a serial; nil when the record is late (its serial was retired).
    private func admit(_ si: Int, serial: UInt32, time: AuditTime, timeMs: UInt64) -> Int? {
        if !streams[si].started {
            streams[si].started = true
            streams[si].base = serial
            streams[si].top = serial &- 1
            streams[si].emptyUntil = serial
        }
        let base = streams[si].base
        let d = serial &- base
        if d >= 0x8000_0000 {
            // Behind the base: retired already, unless nothing has retired yet (the stream
            // started out of order) or the jump back is large (a new boot, another file).
            if !streams[si].retiredAny, streams[si].top &- serial < window {
                streams[si].base = serial
                streams[si].emptyUntil = serial
            } else if base &- serial <= window {
                return nil
            } else {
                restart(si, at: serial, countingFrom: nil)
            }
        } else if d >= window {
            // Too far ahead for the window: a loss if moderate, else a restart.
            restart(si, at: serial, countingFrom: d <= maxGap ? serial : nil)
        }
        let i = Int(serial & mask)
        let existing = streams[si].slots[i]
        if existing.serial == serial, existing.state == .open || existing.state == .complete { return i }
        if (serial &- streams[si].base) <= (streams[si].top &- streams[si].base),
           existing.serial == serial, existing.state == .done || existing.state == .lost {
            return nil
        }
        // A new event.
        if streams[si].buffers[i] == nil { streams[si].buffers[i] = EventBuffer() } else { streams[si].buffers[i]!.reset() }
        streams[si].slots[i] = Slot(serial: serial, state: .open, timeMs: timeMs, time: time)
        if (serial &- streams[si].top) < 0x8000_0000 { streams[si].top = serial }
        if (serial &- streams[si].base) < (streams[si].emptyUntil &- streams[si].base) { streams[si].emptyUntil = serial }
        return i
    }

    /// Hands out everything held and starts the window at serial. With `countingFrom`,
    /// the serials skipped between the old top and it count as lost.
    private func restart(_ si: Int, at serial: UInt32, countingFrom: UInt32?) {
        let oldTop = streams[si].top
        retire(si, force: true)
        if countingFrom != nil, streams[si].tracksGaps {
            counters.lost += Int(serial &- oldTop &- 1)
        } else {
            counters.resyncs += 1
        }
        streams[si].base = serial
        streams[si].top = serial &- 1
        streams[si].emptyUntil = serial
    }

    private func markComplete(_ si: Int, _ i: Int) {
        streams[si].slots[i].state = .complete
        pending.append((si, streams[si].slots[i].serial))
    }

    private func flushPending() {
        guard !pending.isEmpty else { return }
        for (si, serial) in pending {
            let i = Int(serial & mask)
            let sl = streams[si].slots[i]
            guard sl.serial == serial, sl.state == .complete else { continue }
            emit(si, i)
        }
        pending.removeAll(keepingCapacity: true)
    }

    private func emit(_ si: Int, _ i: Int) {
        let slot = streams[si].slots[i]
        let buf = streams[si].buffers[i]!
        counters.events += 1
        sink(AuditEventView(buffer: buf, node: streams[si].node, serial: slot.serial, time: slot.time, isLate: false, nodeNames: nodeNames))
        // The hashes stay to recognise duplicates while the slot keeps this serial.
        buf.bytes.removeAll(keepingCapacity: buf.bytes.capacity <= 16384)
        buf.starts.removeAll(keepingCapacity: true)
        buf.headers.removeAll(keepingCapacity: true)
        streams[si].slots[i].state = .done
    }

    /// Retires from the base: handed-out slots pass, timed-out events are handed out,
    /// gaps older than the timeout (measured from the next held event) are lost.
    private func retire(_ si: Int, force: Bool) {
        guard streams[si].started else { return }
        let clock = streamClock
        while true {
            let base = streams[si].base
            let top = streams[si].top
            if (top &- base) >= 0x8000_0000 { return }  // nothing held
            let i = Int(base & mask)
            let slot = streams[si].slots[i]
            if slot.serial == base, slot.state != .empty {
                switch slot.state {
                case .done, .lost: break
                case .open, .complete:
                    guard force || slot.timeMs &+ timeoutMilliseconds <= clock else { return }
                    emit(si, i)
                case .empty: break
                }
                streams[si].base = base &+ 1
                streams[si].retiredAny = true
                if (streams[si].emptyUntil &- base) == 0 { streams[si].emptyUntil = base &+ 1 }
                continue
            }
            // A gap at the base: find the next held serial, skipping what is known empty.
            var j = (streams[si].emptyUntil &- base) < 0x8000_0000 && streams[si].emptyUntil != base ? streams[si].emptyUntil : base &+ 1
            var next: Slot? = nil
            while (top &- j) < 0x8000_0000 {
                let s = streams[si].slots[Int(j & mask)]
                if s.serial == j, s.state != .empty, s.state != .lost { next = s; break }
                j &+= 1
            }
            streams[si].emptyUntil = j
            guard let next else { return }
            guard force || next.timeMs &+ timeoutMilliseconds <= clock else { return }
            var k = base
            while k != j {
                // Remember each missing serial, so a record that still comes is uncounted.
                let idx = Int(k & mask)
                streams[si].slots[idx] = Slot(serial: k, state: .lost, timeMs: 0, time: slot.time)
                streams[si].buffers[idx]?.reset()
                k &+= 1
            }
            if streams[si].tracksGaps { counters.lost += Int(j &- base) }
            streams[si].retiredAny = true
            streams[si].base = j
            streams[si].emptyUntil = j
        }
    }

    private func handleLate(_ si: Int, serial: UInt32, line: UnsafeRawBufferPointer, header h: RecordHeader, hash: UInt64) {
        let i = Int(serial & mask)
        let slot = streams[si].slots[i]
        if slot.serial == serial, slot.state == .done, let buf = streams[si].buffers[i], buf.hashes.contains(hash) {
            counters.duplicates += 1
            return
        }
        if slot.serial == serial, slot.state == .lost, streams[si].tracksGaps {
            // Counted lost, but here it is.
            counters.lost -= 1
            streams[si].slots[i].state = .done
        }
        counters.late += 1
        lateBuffer.reset()
        lateBuffer.append(line, header: h, hash: hash)
        counters.events += 1
        sink(AuditEventView(buffer: lateBuffer, node: streams[si].node, serial: serial, time: h.time, isLate: true, nodeNames: nodeNames))
    }

    private func containsSame(_ buf: EventBuffer, _ line: UnsafeRawBufferPointer, _ hash: UInt64) -> Bool {
        for (k, h) in buf.hashes.enumerated() where h == hash {
            let start = buf.starts[k]
            let len = Int(buf.headers[k].length)
            if len == line.count, buf.bytes.withUnsafeBytes({ memcmp($0.baseAddress! + start, line.baseAddress!, len) == 0 }) {
                return true
            }
        }
        return false
    }

    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer) -> UInt64 {
        // FNV-1a style over 8-byte words: enough for a duplicate check, not cryptographic.
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(b.count)
        var i = 0
        let n = b.count
        while i + 8 <= n {
            h = (h ^ b.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01b3
            h ^= h >> 29
            i += 8
        }
        while i < n { h = (h ^ UInt64(b[i])) &* 0x100_0000_01b3; i += 1 }
        return h
    }
}

/// An owned event: what the pipeline passes around once assembly is done.
public struct AuditEvent: Sendable, Equatable {
    public var node: String?
    public var serial: UInt32
    public var time: AuditTime
    public var records: [AuditRecord]
    public var isLate: Bool

    public init(node: String?, serial: UInt32, time: AuditTime, records: [AuditRecord], isLate: Bool = false) {
        self.node = node
        self.serial = serial
        self.time = time
        self.records = records
        self.isLate = isLate
    }

    public func first(_ type: AuditRecordType) -> AuditRecord? { records.first { $0.type == type } }
}
