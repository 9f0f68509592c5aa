// Groups records into events by (node, serial), as auparse and go-libaudit's
// reassembler do. An event is complete at EOE, at a standalone type, or by
// timeout. The timeout rule (logs without EOE: auditd's, go-libaudit's fixtures):
//
//   an open event is complete when the stream clock (the newest record time seen)
//   has passed its time + timeout AND at least `laterEvents` (default 4) events
//   were opened after it; or when the idle clock (`advanceClock(to:)`, a live
//   source's wall time while nothing arrives) has passed its time + timeout.
//
// The clock alone is not enough: after a jump of the log's clock (go-libaudit's
// out_of_order fixture: serial 61 is 7.8 s after 60) a straggler record of the
// older event would come after its event was handed out, and split it (ausearch
// does). The count alone is not enough either: an idle live stream sees no later
// events, and its last event must still go out, which the idle clock does. The
// common case pays one subtraction: in a dense log the count is met long before
// the clock. Window pressure (a serial `window` ahead) still completes old events.
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
    @usableFromInline let storage: UnsafePointer<EventStorage>
    public let node: Int32
    public let serial: UInt32
    public let time: AuditTime
    /// True for records that arrived after their event was handed out.
    public let isLate: Bool
    /// The assembler's node names, borrowed like the records (no reference counting per event).
    let nodeNames: UnsafePointer<[[UInt8]]>

    public var recordCount: Int { storage.pointee.recordCount }
    public var nodeName: String? {
        node == 0 ? nil : String(decoding: nodeNames.pointee[Int(node)], as: UTF8.self)
    }
    /// The header of record i (offsets relative to the record's own line).
    public func header(_ i: Int) -> RecordHeader { storage.pointee.records![i].header }
    /// The bytes of record i, borrowed.
    @inlinable
    public func withRecordBytes<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(storage.pointee.bytes(of: i))
    }
    /// An owned copy.
    public func makeEvent() -> AuditEvent {
        let st = storage.pointee
        var records: [AuditRecord] = []
        records.reserveCapacity(st.recordCount)
        for i in 0..<st.recordCount {
            records.append(AuditRecord(text: Array(st.bytes(of: i)), header: st.records![i].header))
        }
        return AuditEvent(node: nodeName, serial: serial, time: time, records: records, isLate: isLate)
    }
}

/// One stored record: where its bytes start and its header.
@usableFromInline
struct StoredRecord {
    @usableFromInline var start: Int
    @usableFromInline var header: RecordHeader
}

/// Raw memory for one event's records, reused across events. Manual storage keeps
/// the per-record path free of reference counting and exclusivity checks.
public struct EventStorage {
    @usableFromInline var byteBase: UnsafeMutableRawPointer? = nil
    @usableFromInline var byteCount = 0
    var byteCapacity = 0
    @usableFromInline var records: UnsafeMutablePointer<StoredRecord>? = nil
    @usableFromInline var recordCount = 0
    var recordCapacity = 0
    /// The first buffers of a slot come from its stream's arena (never freed one by one).
    var bytesInArena = false
    var recordsInArena = false

    @inlinable
    func bytes(of i: Int) -> UnsafeRawBufferPointer {
        let r = records![i]
        return UnsafeRawBufferPointer(start: byteBase! + r.start, count: Int(r.header.length))
    }

    @inline(__always)
    mutating func reset() {
        byteCount = 0
        recordCount = 0
        if byteCapacity > 1 << 16 {
            // One huge event should not pin its memory in a slot for ever.
            byteBase?.deallocate(); byteBase = nil; byteCapacity = 0
        }
    }

    @inline(__always)
    mutating func append(_ line: UnsafeRawBufferPointer, header: RecordHeader) {
        let n = line.count
        if byteCount + n > byteCapacity {
            let cap = max(2048, (byteCount + n) * 2)
            let nb = UnsafeMutableRawPointer.allocate(byteCount: cap, alignment: 16)
            if let old = byteBase {
                nb.copyMemory(from: old, byteCount: byteCount)
                if !bytesInArena { old.deallocate() }
            }
            byteBase = nb
            byteCapacity = cap
            bytesInArena = false
        }
        if recordCount == recordCapacity {
            let cap = max(8, recordCapacity * 2)
            let nr = UnsafeMutablePointer<StoredRecord>.allocate(capacity: cap)
            if let old = records {
                nr.moveInitialize(from: old, count: recordCount)
                if !recordsInArena { old.deallocate() }
            }
            records = nr
            recordCapacity = cap
            recordsInArena = false
        }
        if n > 0 { (byteBase! + byteCount).copyMemory(from: line.baseAddress!, byteCount: n) }
        (records! + recordCount).initialize(to: StoredRecord(start: byteCount, header: header))
        byteCount += n
        recordCount += 1
    }

    /// True when an identical record is already stored. Records of one event rarely share
    /// type and length, so the bytes are compared only then (cheaper than hashing each line).
    @inline(__always)
    func contains(_ line: UnsafeRawBufferPointer, header: RecordHeader) -> Bool {
        for k in 0..<recordCount {
            let h = records![k].header
            guard h.length == header.length, h.type == header.type else { continue }
            if memcmp(byteBase! + records![k].start, line.baseAddress!, line.count) == 0 { return true }
        }
        return false
    }

    func free() {
        if !bytesInArena { byteBase?.deallocate() }
        if !recordsInArena { records?.deallocate() }
    }
}

public final class EventAssembler {
    public typealias Sink = (AuditEventView) -> Void

    /// How long (stream time) an incomplete event or a gap waits. Default 2 s, as auparse.
    public let timeoutMilliseconds: UInt64
    public var counters: AssemblyCounters { hot.pointee.counters }
    private let sink: Sink

    private enum SlotState: UInt8 { case empty, open, complete, done, lost }
    /// A slot holds one serial; after the event is handed out the slot keeps its serial
    /// and records until a newer serial reuses it, to recognise duplicates.
    private struct Slot {
        var serial: UInt32 = 0
        var state: SlotState = .empty
        var timeMs: UInt64 = 0
        /// `eventsOpened` when this event was opened: events opened since = eventsOpened - opened - 1.
        var opened: UInt64 = 0
        var time = AuditTime(seconds: 0, milliseconds: 0)
        var storage = EventStorage()
    }
    /// One serial space: a node's kernel serials, or a node's auditd DAEMON_* serials.
    private struct Stream {
        var node: Int32
        var tracksGaps: Bool
        var started = false
        var retiredAny = false        // until something retires, an earlier serial may lower the base
        var base: UInt32 = 0          // oldest serial not yet retired
        var top: UInt32 = 0           // newest serial seen (base == top &+ 1: nothing held)
        var emptyUntil: UInt32 = 0    // serials in [base, emptyUntil) are known to be gaps
        var slots: UnsafeMutablePointer<Slot>
        /// The slots' first buffers, in one mapping (see `makeArena`).
        var arena: UnsafeMutableRawPointer? = nil
        var arenaSize = 0
    }

    private let window: UInt32
    private let mask: UInt32
    /// Ahead jumps up to this many serials are losses; larger ones restart the window.
    private let maxGap: UInt32 = 1 << 20
    /// Events that must have been opened after an open one before the stream clock may time it out.
    public let laterEvents: UInt64
    private let lateStorage = UnsafeMutablePointer<EventStorage>.allocate(capacity: 1)

    /// The state every record touches, in raw memory: stored properties of a class pay a
    /// dynamic exclusivity check per access, which was a fifth of the per-record cost.
    private struct Hot {
        var counters = AssemblyCounters()
        var streams: UnsafeMutablePointer<Stream>
        var streamCount = 0
        var streamCapacity = 4
        var lastStreamKey = -1
        var lastStream = 0
        var streamClock: UInt64 = 0
        /// The newest time given by `advanceClock(to:)`: it alone times events out.
        var idleClock: UInt64 = 0
        /// Events opened so far, in every stream (the "later events" of the timeout rule).
        var eventsOpened: UInt64 = 0
        /// Events completed but not yet handed out: (stream, serial).
        var pending: [(Int, UInt32)] = []
        var lastKey: (Int, UInt32) = (-1, 0)
        var drainingAll = false
        var streamIndex: [Int: Int] = [:]  // node << 1 | daemon -> stream
        var nodeNames: [[UInt8]] = [[]]
        var nodeIDs: [[UInt8]: Int32] = [:]
        var lastNodeBytes: [UInt8] = []
        var lastNodeID: Int32 = 0
    }
    private let hot: UnsafeMutablePointer<Hot>
    /// Where the node names live (in `hot`, whose memory never moves).
    private var namesPointer: UnsafePointer<[[UInt8]]> {
        @inline(__always) get {
            UnsafePointer(UnsafeMutableRawPointer(hot).advanced(by: MemoryLayout<Hot>.offset(of: \Hot.nodeNames)!)
                .assumingMemoryBound(to: [[UInt8]].self))
        }
    }
    private var streams: UnsafeMutablePointer<Stream> { @inline(__always) get { hot.pointee.streams } @inline(__always) set { hot.pointee.streams = newValue } }
    private var streamCount: Int { @inline(__always) get { hot.pointee.streamCount } @inline(__always) set { hot.pointee.streamCount = newValue } }
    private var streamCapacity: Int { @inline(__always) get { hot.pointee.streamCapacity } @inline(__always) set { hot.pointee.streamCapacity = newValue } }
    private var lastStreamKey: Int { @inline(__always) get { hot.pointee.lastStreamKey } @inline(__always) set { hot.pointee.lastStreamKey = newValue } }
    private var lastStream: Int { @inline(__always) get { hot.pointee.lastStream } @inline(__always) set { hot.pointee.lastStream = newValue } }
    private var streamClock: UInt64 { @inline(__always) get { hot.pointee.streamClock } @inline(__always) set { hot.pointee.streamClock = newValue } }
    private var idleClock: UInt64 { @inline(__always) get { hot.pointee.idleClock } @inline(__always) set { hot.pointee.idleClock = newValue } }
    private var eventsOpened: UInt64 { @inline(__always) get { hot.pointee.eventsOpened } @inline(__always) set { hot.pointee.eventsOpened = newValue } }
    private var lastKey: (Int, UInt32) { @inline(__always) get { hot.pointee.lastKey } @inline(__always) set { hot.pointee.lastKey = newValue } }
    private var drainingAll: Bool { @inline(__always) get { hot.pointee.drainingAll } @inline(__always) set { hot.pointee.drainingAll = newValue } }

    /// Hand events out in serial order (per node): a complete event waits for the
    /// open ones before it. Offline replay needs it, because the registry it rebuilds
    /// follows the trail; a live reader hands out events as they complete.
    public let ordered: Bool

    public init(timeoutMilliseconds: UInt64 = 2000, laterEvents: UInt64 = 4, windowBits: Int = 12, ordered: Bool = false,
                sink: @escaping Sink) {
        precondition((4...24).contains(windowBits))
        self.ordered = ordered
        self.laterEvents = laterEvents
        self.timeoutMilliseconds = timeoutMilliseconds
        self.window = 1 << UInt32(windowBits)
        self.mask = (1 << UInt32(windowBits)) - 1
        self.sink = sink
        hot = .allocate(capacity: 1)
        hot.initialize(to: Hot(streams: .allocate(capacity: 4)))
        lateStorage.initialize(to: EventStorage())
    }

    deinit {
        for si in 0..<streamCount {
            let s = streams[si].slots
            for i in 0..<Int(window) { s[i].storage.free() }
            s.deinitialize(count: Int(window))
            s.deallocate()
            if let a = streams[si].arena { munmap(a, streams[si].arenaSize) }
        }
        streams.deinitialize(count: streamCount)
        streams.deallocate()
        lateStorage.pointee.free()
        lateStorage.deinitialize(count: 1)
        lateStorage.deallocate()
        hot.deinitialize(count: 1)
        hot.deallocate()
    }

    // MARK: input

    /// Adds one line of text (no newline). Returns the parse error for a bad line.
    @discardableResult
    @inline(__always)
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
        hot.pointee.counters.records += 1
        let nodeID = h.node.isEmpty ? 0 : internNode(UnsafeRawBufferPointer(rebasing: line[Int(h.node.lowerBound)..<Int(h.node.upperBound)]))
        let si = stream(node: nodeID, daemon: h.type.isDaemonRecord)
        let st = streams + si
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
            let slot = st.pointee.slots + Int(serial & mask)
            if st.pointee.started, isHeld(st, serial), slot.pointee.state == .open {
                markComplete(si, slot)
            }
            retire(si, force: false)
            return
        }
        guard let slot = admit(si, serial: serial, time: h.time, timeMs: tms) else {
            handleLate(si, serial: serial, line: line, header: h)
            retire(si, force: false)
            return
        }
        if slot.pointee.storage.recordCount > 0, slot.pointee.storage.contains(line, header: h) {
            hot.pointee.counters.duplicates += 1
        } else {
            slot.pointee.storage.append(line, header: h)
            if h.type.isStandalone, slot.pointee.state == .open { markComplete(si, slot) }
        }
        retire(si, force: false)
    }

    /// Hands out every complete event now, and any timed out (a live reader calls this after each batch).
    public func drain() {
        flushPending()
        drainingAll = true
        for si in 0..<streamCount { retire(si, force: false) }
        drainingAll = false
    }


    /// Moves the stream clock and the idle clock (live sources: wall time while idle),
    /// then drains: an event older than the timeout goes out even with no event after it.
    public func advanceClock(to time: AuditTime) {
        let t = time.totalMilliseconds
        if t > streamClock { streamClock = t }
        if t > idleClock { idleClock = t }
        drain()
    }

    /// End of input: every open event is handed out; gaps between seen serials are lost.
    public func finish() {
        for si in 0..<streamCount { retire(si, force: true) }
        flushPending()
    }

    /// Events held now (open or complete, not yet handed out).
    public var inFlight: Int {
        var n = 0
        for si in 0..<streamCount where streams[si].started {
            let s = streams[si]
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
        if name.elementsEqual(hot.pointee.lastNodeBytes) { return hot.pointee.lastNodeID }
        let bytes = Array(name)
        let id: Int32
        if let known = hot.pointee.nodeIDs[bytes] { id = known } else {
            id = Int32(hot.pointee.nodeNames.count)
            hot.pointee.nodeNames.append(bytes)
            hot.pointee.nodeIDs[bytes] = id
        }
        hot.pointee.lastNodeBytes = bytes
        hot.pointee.lastNodeID = id
        return id
    }

    @inline(__always)
    private func stream(node: Int32, daemon: Bool) -> Int {
        let key = Int(node) << 1 | (daemon ? 1 : 0)
        if key == lastStreamKey { return lastStream }
        let s = hot.pointee.streamIndex[key] ?? addStream(key: key, node: node, daemon: daemon)
        lastStreamKey = key
        lastStream = s
        return s
    }

    /// Bytes and records of a slot's first buffers: most events fit (an exec event of a
    /// dozen records is ~2.5 KiB); bigger ones move to their own allocation.
    static let arenaBytesPerSlot = 2048
    static let arenaRecordsPerSlot = 8

    /// Gives every slot its first buffers from one anonymous mapping, advised to use huge
    /// pages: the window's memory (about 10 MiB) then costs a handful of page faults, not
    /// the ~2,600 that one malloc per slot took (a sixth of a replay of 200 MB here).
    /// nil when the mapping fails: the slots then allocate as they go.
    private static func makeArena(slots: UnsafeMutablePointer<Slot>, count: Int) -> (UnsafeMutableRawPointer?, Int) {
        let recordBytes = arenaRecordsPerSlot * MemoryLayout<StoredRecord>.stride
        let perSlot = arenaBytesPerSlot + recordBytes
        let size = (count * perSlot + (2 << 20) - 1) & ~((2 << 20) - 1)
        let p = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let p, p != MAP_FAILED else { return (nil, 0) }
        #if os(Linux)
        _ = madvise(p, size, 14)  // MADV_HUGEPAGE
        #endif
        for i in 0..<count {
            let base = p + i * perSlot
            slots[i].storage.byteBase = base
            slots[i].storage.byteCapacity = arenaBytesPerSlot
            slots[i].storage.bytesInArena = true
            slots[i].storage.records = (base + arenaBytesPerSlot).bindMemory(to: StoredRecord.self, capacity: arenaRecordsPerSlot)
            slots[i].storage.recordCapacity = arenaRecordsPerSlot
            slots[i].storage.recordsInArena = true
        }
        return (p, size)
    }

    private func addStream(key: Int, node: Int32, daemon: Bool) -> Int {
        if streamCount == streamCapacity {
            let bigger = UnsafeMutablePointer<Stream>.allocate(capacity: streamCapacity * 2)
            bigger.moveInitialize(from: streams, count: streamCount)
            streams.deallocate()
            streams = bigger
            streamCapacity *= 2
        }
        let slots = UnsafeMutablePointer<Slot>.allocate(capacity: Int(window))
        slots.initialize(repeating: Slot(), count: Int(window))
        var stream = Stream(node: node, tracksGaps: !daemon, slots: slots)
        (stream.arena, stream.arenaSize) = Self.makeArena(slots: slots, count: Int(window))
        (streams + streamCount).initialize(to: stream)
        hot.pointee.streamIndex[key] = streamCount
        streamCount += 1
        return streamCount - 1
    }

    /// True when serial is between base and top and its slot holds it.
    @inline(__always)
    private func isHeld(_ st: UnsafeMutablePointer<Stream>, _ serial: UInt32) -> Bool {
        let base = st.pointee.base
        let top = st.pointee.top
        guard (serial &- base) <= (top &- base), (top &- base) < 0x8000_0000 else { return false }
        let sl = st.pointee.slots + Int(serial & mask)
        return sl.pointee.serial == serial && sl.pointee.state != .empty
    }

    /// Finds or opens the slot for a serial; nil when the record is late (its serial was retired).
    @inline(__always)
    private func admit(_ si: Int, serial: UInt32, time: AuditTime, timeMs: UInt64) -> UnsafeMutablePointer<Slot>? {
        let st = streams + si
        if !st.pointee.started {
            st.pointee.started = true
            st.pointee.base = serial
            st.pointee.top = serial &- 1
            st.pointee.emptyUntil = serial
        }
        let d = serial &- st.pointee.base
        if d >= 0x8000_0000 {
            // Behind the base: retired already, unless nothing has retired yet (the stream
            // started out of order) or the jump back is large (a new boot, another file).
            if !st.pointee.retiredAny, st.pointee.top &- serial < window {
                st.pointee.base = serial
                st.pointee.emptyUntil = serial
            } else if st.pointee.base &- serial <= window {
                return nil
            } else {
                restart(si, at: serial)
            }
        } else if d >= window {
            if d <= maxGap {
                // Too far ahead for the window: the oldest events are complete by pressure
                // (auditd logs have no EOE) and missing serials among them are lost.
                retire(si, force: false, forceBelow: serial &- window &+ 1)
                if (serial &- st.pointee.base) >= window {
                    // Nothing held between: the whole jump is a gap.
                    if st.pointee.tracksGaps { hot.pointee.counters.lost += Int(serial &- st.pointee.base) }
                    st.pointee.retiredAny = true
                    st.pointee.base = serial
                    st.pointee.top = serial &- 1
                    st.pointee.emptyUntil = serial
                }
            } else {
                restart(si, at: serial)
            }
        }
        let slot = st.pointee.slots + Int(serial & mask)
        let state = slot.pointee.state
        if slot.pointee.serial == serial {
            if state == .open || state == .complete { return slot }
            if state == .done || state == .lost,
               (serial &- st.pointee.base) <= (st.pointee.top &- st.pointee.base) { return nil }
        }
        // A new event.
        slot.pointee.storage.reset()
        slot.pointee.serial = serial
        slot.pointee.state = .open
        slot.pointee.timeMs = timeMs
        slot.pointee.opened = eventsOpened
        eventsOpened &+= 1
        slot.pointee.time = time
        if (serial &- st.pointee.top) < 0x8000_0000 { st.pointee.top = serial }
        if (serial &- st.pointee.base) < (st.pointee.emptyUntil &- st.pointee.base) { st.pointee.emptyUntil = serial }
        return slot
    }

    /// Hands out everything held and starts the window at serial (a resync, no loss counted).
    private func restart(_ si: Int, at serial: UInt32) {
        retire(si, force: true)
        hot.pointee.counters.resyncs += 1
        streams[si].base = serial
        streams[si].top = serial &- 1
        streams[si].emptyUntil = serial
    }

    @inline(__always)
    private func markComplete(_ si: Int, _ slot: UnsafeMutablePointer<Slot>) {
        slot.pointee.state = .complete
        if !ordered { hot.pointee.pending.append((si, slot.pointee.serial)) }
    }

    @inline(__always)
    private func flushPending() {
        guard !hot.pointee.pending.isEmpty else { return }
        for (si, serial) in hot.pointee.pending {
            let slot = streams[si].slots + Int(serial & mask)
            guard slot.pointee.serial == serial, slot.pointee.state == .complete else { continue }
            emit(si, slot)
        }
        hot.pointee.pending.removeAll(keepingCapacity: true)
    }

    private func emit(_ si: Int, _ slot: UnsafeMutablePointer<Slot>) {
        hot.pointee.counters.events += 1
        withUnsafeMutablePointer(to: &slot.pointee.storage) { storage in
            sink(AuditEventView(storage: UnsafePointer(storage), node: streams[si].node, serial: slot.pointee.serial,
                                time: slot.pointee.time, isLate: false, nodeNames: namesPointer))
        }
        // The records stay to recognise duplicates while the slot keeps this serial.
        slot.pointee.state = .done
    }

    /// Retires from the base: handed-out slots pass, timed-out events are handed out,
    /// gaps older than the timeout (measured from the next held event) are lost.
    @inline(__always)
    private func retire(_ si: Int, force forceAll: Bool, forceBelow: UInt32? = nil) {
        let st = streams + si
        guard st.pointee.started else { return }
        let clock = streamClock
        while true {
            let base = st.pointee.base
            let top = st.pointee.top
            if (top &- base) >= 0x8000_0000 { return }  // nothing held
            let force = forceAll || forceBelow.map { (base &- $0) >= 0x8000_0000 } ?? false
            let slot = st.pointee.slots + Int(base & mask)
            if slot.pointee.serial == base, slot.pointee.state != .empty {
                switch slot.pointee.state {
                case .done, .lost, .empty: break
                case .complete where ordered:
                    // Complete: out once the stream has moved on (a CONTAINER_ID may still follow).
                    guard force || drainingAll || lastKey.0 != si || lastKey.1 != base else { return }
                    emit(si, slot)
                case .open:
                    let due = slot.pointee.timeMs &+ timeoutMilliseconds
                    guard force || due <= idleClock
                        || (due <= clock && eventsOpened &- slot.pointee.opened > laterEvents) else { return }
                    emit(si, slot)
                case .complete:
                    guard force || slot.pointee.timeMs &+ timeoutMilliseconds <= clock else { return }
                    emit(si, slot)
                }
                st.pointee.base = base &+ 1
                st.pointee.retiredAny = true
                if st.pointee.emptyUntil == base { st.pointee.emptyUntil = base &+ 1 }
                continue
            }
            if !retireGap(st, force: force, clock: clock) { return }
        }
    }

    /// A gap at the base: declares it lost once the next held event is old enough.
    private func retireGap(_ st: UnsafeMutablePointer<Stream>, force: Bool, clock: UInt64) -> Bool {
        let base = st.pointee.base
        let top = st.pointee.top
        let eu = st.pointee.emptyUntil
        var j = (eu &- base) < 0x8000_0000 && eu != base ? eu : base &+ 1
        var nextTime: UInt64? = nil
        while (top &- j) < 0x8000_0000 {
            let s = st.pointee.slots + Int(j & mask)
            if s.pointee.serial == j, s.pointee.state != .empty, s.pointee.state != .lost { nextTime = s.pointee.timeMs; break }
            j &+= 1
        }
        st.pointee.emptyUntil = j
        guard let nextTime else { return false }
        guard force || nextTime &+ timeoutMilliseconds <= clock else { return false }
        var k = base
        while k != j {
            // Remember each missing serial, so a record that still comes is uncounted.
            let s = st.pointee.slots + Int(k & mask)
            s.pointee.storage.reset()
            s.pointee.serial = k
            s.pointee.state = .lost
            k &+= 1
        }
        if st.pointee.tracksGaps { hot.pointee.counters.lost += Int(j &- base) }
        st.pointee.retiredAny = true
        st.pointee.base = j
        st.pointee.emptyUntil = j
        return true
    }

    private func handleLate(_ si: Int, serial: UInt32, line: UnsafeRawBufferPointer, header h: RecordHeader) {
        let slot = streams[si].slots + Int(serial & mask)
        if slot.pointee.serial == serial, slot.pointee.state == .done, slot.pointee.storage.contains(line, header: h) {
            hot.pointee.counters.duplicates += 1
            return
        }
        if slot.pointee.serial == serial, slot.pointee.state == .lost, streams[si].tracksGaps {
            // Counted lost, but here it is.
            hot.pointee.counters.lost -= 1
            slot.pointee.state = .done
        }
        if slot.pointee.serial == serial, slot.pointee.state == .done {
            // Keep it so that a repeat of this late record is recognised as a duplicate.
            slot.pointee.storage.append(line, header: h)
        }
        hot.pointee.counters.late += 1
        lateStorage.pointee.reset()
        lateStorage.pointee.append(line, header: h)
        hot.pointee.counters.events += 1
        sink(AuditEventView(storage: UnsafePointer(lateStorage), node: streams[si].node, serial: serial, time: h.time,
                            isLate: true, nodeNames: namesPointer))
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

/// The records of an event, borrowed (`AuditEventView`) or owned (`AuditEvent`): what
/// annotation and output read, so one implementation serves the live and the cold path.
public protocol AuditRecordSequence {
    var recordCount: Int { get }
    /// The header of record i (offsets relative to the record's own line).
    func header(_ i: Int) -> RecordHeader
    /// The bytes of record i, borrowed.
    func withRecordBytes<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension AuditEventView: AuditRecordSequence {}

extension AuditEvent: AuditRecordSequence {
    public var recordCount: Int { records.count }
    public func header(_ i: Int) -> RecordHeader { records[i].header }
    @inlinable
    public func withRecordBytes<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try records[i].text.withUnsafeBytes(body)
    }
}

extension AuditEvent {
    /// The owned event as a borrowed view, valid only during `body`: a pipeline that had to
    /// keep a copy (held attribution) passes it on through the same steps as a borrowed one.
    public func withView<R>(_ body: (AuditEventView) throws -> R) rethrows -> R {
        var storage = EventStorage()
        defer { storage.free() }
        for r in records { r.text.withUnsafeBytes { storage.append($0, header: r.header) } }
        let names: [[UInt8]] = node.map { [[], Array($0.utf8)] } ?? [[]]
        return try withUnsafePointer(to: &storage) { p in
            try withUnsafePointer(to: names) { n in
                try body(AuditEventView(storage: p, node: node == nil ? 0 : 1, serial: serial, time: time, isLate: isLate,
                                        nodeNames: n))
            }
        }
    }
}
