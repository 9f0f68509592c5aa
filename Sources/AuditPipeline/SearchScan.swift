// The scan behind `contid search` and `contid report`: a log mapped into memory,
// read line by line as raw bytes. Every line's header is read (it says which
// event the line belongs to); nothing else of a line is looked at unless the
// line holds the query's needle (found with memchr over the whole buffer, not
// per line), so only the events that can match are ever parsed. Events are
// grouped as ausearch groups them: records with the same node, serial and
// stamp, until EOE, a type ausearch takes for a whole event when it comes first,
// or a record two seconds of stamp later.
// An event's records are kept as offsets into the mapping: no copy, and no
// allocation per record once the tables are warm.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec
import ContainerEngine

/// Where matched events go.
public protocol SearchSink: AnyObject {
    /// One matched event, its records in the order they were read; valid only during the call.
    func event(_ records: UnsafeBufferPointer<SearchRecord>, node: UnsafeRawBufferPointer?, serial: UInt32, time: AuditTime)
}

/// A log file's bytes: mapped when it is a regular file, read whole otherwise (pipes, standard input).
public final class MappedLog {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let mapped: Bool

    public init(path: String) throws(LogReadError) {
        self.path = path
        let fd: Int32 = path == "-" ? 0 : open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LogReadError(path: path, errno: errno) }
        defer { if path != "-" { close(fd) } }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG {
            let size = Int(st.st_size)
            if size == 0 {
                bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                mapped = false
                return
            }
            guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
                throw LogReadError(path: path, errno: errno)
            }
            _ = madvise(p, size, Int32(MADV_SEQUENTIAL))
            bytes = UnsafeRawBufferPointer(start: p, count: size)
            mapped = true
            return
        }
        var capacity = 1 << 20, count = 0
        var buf = UnsafeMutableRawPointer.allocate(byteCount: capacity, alignment: 64)
        while true {
            if count == capacity {
                let bigger = UnsafeMutableRawPointer.allocate(byteCount: capacity * 2, alignment: 64)
                bigger.copyMemory(from: buf, byteCount: count)
                buf.deallocate()
                buf = bigger
                capacity *= 2
            }
            let n = read(fd, buf + count, capacity - count)
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                buf.deallocate()
                throw LogReadError(path: path, errno: e)
            }
            if n == 0 { break }
            count += n
        }
        bytes = UnsafeRawBufferPointer(start: buf, count: count)
        mapped = false
    }

    deinit {
        guard let base = bytes.baseAddress else { return }
        if mapped { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) } else { base.deallocate() }
    }
}

/// Finds needles in a buffer: memchr for each needle's rarest byte (by the buffer's own byte
/// counts), memcmp to confirm. A line holds a needle when the next hit lies before its end.
struct NeedleFinder {
    /// `pivot`: the offset of the needle's rarest byte (memchr looks for it); `second`: the next
    /// rarest, compared before memcmp is called.
    struct Needle { var bytes: [UInt8]; var pivot: Int; var second: Int; var next: Int }
    var needles: [Needle]
    let buffer: UnsafeRawBufferPointer
    /// Searches end here: the end of the byte range being read (the index skips the rest).
    private(set) var limit: Int

    init(_ list: [[UInt8]], in buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        limit = buffer.count
        var counts = [Int](repeating: 0, count: 256)
        let sample = min(buffer.count, 1 << 20)
        for i in 0..<sample { counts[Int(buffer[i])] += 1 }
        needles = list.filter { !$0.isEmpty }.map { n in
            let order = n.indices.sorted { counts[Int(n[$0])] < counts[Int(n[$1])] }
            return Needle(bytes: n, pivot: order[0], second: order.count > 1 ? order[1] : order[0], next: -1)
        }
    }

    var isEmpty: Bool { needles.isEmpty }

    /// Reads the range that ends at `end` next: earlier hits are forgotten.
    mutating func start(rangeEndingAt end: Int) {
        limit = end
        for k in needles.indices { needles[k].next = -1 }
    }

    /// True when some needle occurs in [start, end). Lines must be asked about in order.
    @inline(__always)
    mutating func hit(_ start: Int, _ end: Int) -> Bool {
        var any = false
        for k in needles.indices {
            if needles[k].next < start { needles[k].next = find(k, from: start) }
            if needles[k].next + needles[k].bytes.count <= end { any = true }
        }
        return any
    }

    /// The first offset >= from of needle k, or a value past the buffer. Sixteen positions at a
    /// time: the needle's two rarest bytes compared at their offsets (SIMD), memcmp for the rest.
    func find(_ k: Int, from: Int) -> Int {
        let n = needles[k]
        guard let base = buffer.baseAddress else { return Int.max / 2 }
        let count = n.bytes.count
        let p1 = n.pivot, p2 = n.second
        let b1 = SIMD16<UInt8>(repeating: n.bytes[p1]), b2 = SIMD16<UInt8>(repeating: n.bytes[p2])
        let last = limit - count  // the last position a match may start at
        var i = max(0, from)
        let reach = max(p1, p2) + 16
        return n.bytes.withUnsafeBytes { nb in
            while i + reach <= limit, i <= last {
                let m = (base.loadUnaligned(fromByteOffset: i + p1, as: SIMD16<UInt8>.self) .== b1)
                    .& (base.loadUnaligned(fromByteOffset: i + p2, as: SIMD16<UInt8>.self) .== b2)
                if any(m) {
                    for lane in 0..<16 where m[lane] {
                        let at = i + lane
                        if at <= last, memcmp(base + at, nb.baseAddress!, count) == 0 { return at }
                    }
                }
                i += 16
            }
            while i <= last {
                if memcmp(base + i, nb.baseAddress!, count) == 0 { return i }
                i += 1
            }
            return Int.max / 2
        }
    }
}

/// Which containers an event must belong to: an ID (innermost, or anywhere in the chain
/// with `nested`), or IDs each over a span of time (a label's holders).
public struct ContainerSelection: Sendable {
    public struct Span: Sendable {
        public var id: [UInt8]
        public var from: UInt64
        public var until: UInt64
        public init(id: [UInt8], from: UInt64, until: UInt64) {
            self.id = id
            self.from = from
            self.until = until
        }
    }
    public var spans: [Span]
    public var nested: Bool

    public init(spans: [Span], nested: Bool) {
        self.spans = spans
        self.nested = nested
    }

    /// True when one of the event's CONTAINER_ID records names a selected container at the event's time.
    func matches(_ records: UnsafeBufferPointer<SearchRecord>, milliseconds: UInt64) -> Bool {
        for r in records where r.type == .containerID {
            guard case .success(let h) = RecordScanner.scan(r.line) else { continue }
            let body = UnsafeRawBufferPointer(rebasing: r.line[Int(h.bodyStart)..<Int(h.bodyEnd)])
            guard let range = FieldScanner.valueRange(of: "contid", in: body) else { continue }
            if chainsMatch(UnsafeRawBufferPointer(rebasing: body[range]), milliseconds: milliseconds) { return true }
        }
        return false
    }

    /// `4,^2,^1` or several chains joined by commas (`2,^1,3,^1`): innermost elements lack the `^`.
    func chainsMatch(_ v: UnsafeRawBufferPointer, milliseconds: UInt64) -> Bool {
        var i = 0
        while i < v.count {
            var j = i
            while j < v.count, v[j] != UInt8(ascii: ",") { j += 1 }
            var s = i
            let parent = s < j && v[s] == UInt8(ascii: "^")
            if parent { s += 1 }
            if !parent || nested {
                let element = UnsafeRawBufferPointer(rebasing: v[s..<j])
                for span in spans where milliseconds >= span.from && milliseconds <= span.until {
                    if element.elementsEqual(span.id) { return true }
                }
            }
            i = j + 1
        }
        return false
    }
}

public struct SearchCounters: Sendable {
    public var bytes = 0
    public var lines = 0
    public var events = 0
    public var matched = 0
    public var errors = 0
    public var skippedBytes = 0
}

public final class SearchScan {
    public let matcher: SearchMatcher
    public let containers: ContainerSelection?
    public let sink: SearchSink
    public let diagnostic: (String) -> Void
    public private(set) var counters = SearchCounters()
    /// How many file bytes the scan has read (progress reports); called about every 64 MB.
    public var onProgress: ((Int) -> Void)?
    let needleList: [[UInt8]]

    struct Open {
        var active = false
        var hit = false
        var serial: UInt32 = 0
        var milliseconds: UInt64 = 0
        var node: Range<Int> = 0..<0
        var records: [SearchRecord] = []
    }
    static let slotBits = 13
    private var slots: [Open]
    /// Open events in the order they began: (slot, serial, ms); the front expires first.
    private var order: [(slot: Int, serial: UInt32, ms: UInt64)] = []
    private var orderHead = 0

    public init(query: SearchQuery, containers: ContainerSelection?, needles: [[UInt8]], sink: SearchSink,
                diagnostic: @escaping (String) -> Void) {
        matcher = SearchMatcher(query: query)
        self.containers = containers
        self.sink = sink
        self.diagnostic = diagnostic
        needleList = needles
        slots = Array(repeating: Open(), count: 1 << Self.slotBits)
    }

    /// Scans one input whole (or only the byte ranges `ranges` of it, each starting at a line),
    /// then hands out the events still open.
    public func scan(_ log: MappedLog, ranges: [Range<Int>]? = nil) {
        let buf = log.bytes
        guard let base = buf.baseAddress else { return }
        var finder = NeedleFinder(needleList, in: buf)
        let all = ranges ?? window(buf, &finder) ?? [0..<buf.count]
        var lineNumber = 0
        var lastProgress = 0
        for range in all {
            finder.start(rangeEndingAt: range.upperBound)
            var start = range.lowerBound
            let end = range.upperBound
            while start < end {
                let nlp = memchr(base + start, 0x0A, end - start)
                let stop = nlp.map { base.distance(to: UnsafeRawPointer($0)) } ?? end
                lineNumber += 1
                if stop > start {
                    line(base, start, stop, &finder, log: log, lineNumber: all.count == 1 && all[0].lowerBound == 0 ? lineNumber : nil)
                }
                start = stop + 1
                if start - lastProgress >= 64 << 20 { lastProgress = start; onProgress?(start) }
            }
        }
        counters.bytes += all.reduce(0) { $0 + $1.count }
        counters.skippedBytes += buf.count - all.reduce(0) { $0 + $1.count }
        closeAll()
    }

    @inline(__always)
    private func line(_ base: UnsafeRawPointer, _ start: Int, _ stop: Int, _ finder: inout NeedleFinder,
                      log: MappedLog, lineNumber: Int?) {
        counters.lines += 1
        let bytes = UnsafeRawBufferPointer(start: base + start, count: stop - start)
        if bytes[0] == UInt8(ascii: "#") { return }
        let h: RecordHeader
        switch RecordScanner.scan(bytes) {
        case .success(let v): h = v
        case .failure(let e):
            counters.errors += 1
            diagnostic("\(log.path):\(lineNumber ?? Self.lineNumber(at: start, in: log.bytes)): \(e)")
            return
        }
        let ms = h.time.totalMilliseconds
        expire(before: h.time.seconds)
        let slot = Int(h.serial) & ((1 << Self.slotBits) - 1)
        let node = h.node.isEmpty ? 0..<0 : (start + Int(h.node.lowerBound))..<(start + Int(h.node.upperBound))
        let record = SearchRecord(line: bytes, messageLength: Int(h.bodyEnd), type: h.type)
        let hit = finder.isEmpty || finder.hit(start, stop)
        if slots[slot].active {
            let o = slots[slot]
            if o.serial == h.serial, o.milliseconds == ms, sameNode(base, o.node, node) {
                slots[slot].records.append(record)
                if hit { slots[slot].hit = true }
                if h.type == .eoe { close(slot) }
                return
            }
            close(slot)  // another event on the same slot: 8192 serials apart, long finished
        }
        if h.type == .eoe { return }  // ausearch eats an EOE whose event is done
        slots[slot].active = true
        slots[slot].hit = hit
        slots[slot].serial = h.serial
        slots[slot].milliseconds = ms
        slots[slot].node = node
        slots[slot].records.append(record)
        if Self.endsAtFirstRecord(h.type) {
            close(slot)
        } else {
            order.append((slot, h.serial, ms))
        }
    }

    /// The line number of the line starting at `offset` (errors found while only ranges are read).
    static func lineNumber(at offset: Int, in buf: UnsafeRawBufferPointer) -> Int {
        guard let base = buf.baseAddress else { return 1 }
        var n = 1, i = 0
        while i < offset, let p = memchr(base + i, 0x0A, offset - i) {
            n += 1
            i = base.distance(to: UnsafeRawPointer(p)) + 1
        }
        return n
    }

    static let chunkBytes = 64 << 10

    /// Without an index: the parts of the log around the needle's hits, when they are under
    /// half of it (else nil: all of it). A chunk of 64 KiB is read when it holds a hit, is next
    /// to one that does, or lies within 3 s of a hit's stamp by the stamps of the chunks' first
    /// lines: every record of a hit's event has its stamp, and ausearch ends an event at the first
    /// record 2 s later, so the event's records are all inside. The chunks start at line starts.
    func window(_ buf: UnsafeRawBufferPointer, _ finder: inout NeedleFinder) -> [Range<Int>]? {
        guard !finder.isEmpty, let base = buf.baseAddress, buf.count >= 16 * Self.chunkBytes else { return nil }
        // Chunk starts (line starts) and the stamp of the line there.
        var starts: [Int] = [0]
        var i = Self.chunkBytes
        while i < buf.count {
            guard let p = memchr(base + i, 0x0A, buf.count - i) else { break }
            let s = base.distance(to: UnsafeRawPointer(p)) + 1
            if s < buf.count, s > starts.last! { starts.append(s) }
            i = max(s, starts.last! + Self.chunkBytes)
        }
        func stamp(_ at: Int) -> UInt64? {
            let e = memchr(base + at, 0x0A, buf.count - at).map { base.distance(to: UnsafeRawPointer($0)) } ?? buf.count
            guard case .success(let h) = RecordScanner.scan(UnsafeRawBufferPointer(rebasing: buf[at..<e])) else { return nil }
            return h.time.totalMilliseconds
        }
        var stamps: [UInt64] = []
        stamps.reserveCapacity(starts.count)
        for s in starts { stamps.append(stamp(s) ?? stamps.last ?? 0) }
        func chunk(_ offset: Int) -> Int {
            var lo = 0, hi = starts.count
            while lo + 1 < hi { let m = (lo + hi) / 2; if starts[m] <= offset { lo = m } else { hi = m } }
            return lo
        }
        var read = [Bool](repeating: false, count: starts.count)
        var marked = 0
        func mark(_ c: Int) { if !read[c] { read[c] = true; marked += 1 } }
        for k in finder.needles.indices {
            var at = finder.find(k, from: 0)
            while at < buf.count {
                let c = chunk(at)
                if !read[c] {
                    var ls = at
                    while ls > 0, buf[ls - 1] != 0x0A { ls -= 1 }
                    let t = stamp(ls) ?? stamps[c]
                    var lo = c, hi = c
                    if lo > 0 { lo -= 1 }
                    while lo > 0, stamps[lo] + 3000 >= t { lo -= 1 }
                    if hi + 1 < starts.count { hi += 1 }
                    while hi + 1 < starts.count, stamps[hi + 1] <= t + 3000 { hi += 1 }
                    for j in lo...hi { mark(j) }
                    if marked * 2 > starts.count { return nil }
                }
                // The rest of this chunk is read anyway: the next hit that matters is beyond it.
                let next = c + 1 < starts.count ? starts[c + 1] : buf.count
                at = finder.find(k, from: max(at + 1, next))
            }
        }
        var out: [Range<Int>] = []
        for c in read.indices where read[c] {
            let r = starts[c]..<(c + 1 < starts.count ? starts[c + 1] : buf.count)
            if let l = out.last, l.upperBound == r.lowerBound { out[out.count - 1] = l.lowerBound..<r.upperBound } else { out.append(r) }
        }
        return out
    }

    /// An event whose first record has one of these types is complete at once, as ausearch
    /// 3.0.9 decides (ausearch-lol.c check_events): PROCTITLE, types below SYSCALL (user
    /// messages, LOGIN, DAEMON_*), 2100 and above (AUDIT_FIRST_ANOM_MSG: user-space ranges, contid's own),
    /// KERNEL and the MAC_UNLBL_ALLOW...MAC_CALIPSO_DEL range. A record of the same stamp and
    /// serial that follows starts another event, as it does for ausearch.
    @inline(__always)
    static func endsAtFirstRecord(_ t: AuditRecordType) -> Bool {
        let v = t.rawValue
        return v == 1327 || v < 1300 || v >= 2100 || v == 2000 || (1406...1420).contains(v)
    }

    @inline(__always)
    private func sameNode(_ base: UnsafeRawPointer, _ a: Range<Int>, _ b: Range<Int>) -> Bool {
        a.count == b.count && (a.isEmpty || memcmp(base + a.lowerBound, base + b.lowerBound, a.count) == 0)
    }

    /// Events whose stamp is two seconds behind `seconds` are complete (ausearch's eoe_timeout).
    @inline(__always)
    private func expire(before seconds: UInt64) {
        while orderHead < order.count {
            let (slot, serial, ms) = order[orderHead]
            guard ms / 1000 + 2 <= seconds else { break }
            orderHead += 1
            if slots[slot].active, slots[slot].serial == serial, slots[slot].milliseconds == ms { close(slot) }
        }
        if orderHead > 4096, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
    }

    private func closeAll() {
        for i in orderHead..<order.count {
            let (slot, serial, ms) = order[i]
            if slots[slot].active, slots[slot].serial == serial, slots[slot].milliseconds == ms { close(slot) }
        }
        order.removeAll(keepingCapacity: true)
        orderHead = 0
        for i in slots.indices where slots[i].active { close(i) }
    }

    private func close(_ slot: Int) {
        counters.events += 1
        let o = slots[slot]
        slots[slot].active = false
        if o.hit {
            let ms = o.milliseconds
            let wanted = o.records.withUnsafeBufferPointer { recs in
                matcher.matches(recs, seconds: ms / 1000) && (containers?.matches(recs, milliseconds: ms) ?? true)
            }
            if wanted {
                counters.matched += 1
                let first = o.records[0]
                let node: UnsafeRawBufferPointer? = o.node.isEmpty ? nil : {
                    let h = try? RecordScanner.scan(first.line).get()
                    return h.map { UnsafeRawBufferPointer(rebasing: first.line[Int($0.node.lowerBound)..<Int($0.node.upperBound)]) }
                }()
                o.records.withUnsafeBufferPointer { recs in
                    sink.event(recs, node: node, serial: o.serial,
                               time: AuditTime(seconds: ms / 1000, milliseconds: UInt16(ms % 1000)))
                }
            }
        }
        slots[slot].records.removeAll(keepingCapacity: true)
    }
}

/// The label-to-ID mapping of a trail, scoped in time: a container holds the labels of its
/// CONTAINER_INFO record from that record until its ID is dropped or registered again.
public struct LabelSpans {
    public struct Holder { public var id: [UInt8]; public var from: UInt64; public var until: UInt64; public var labels: [(String, String)] }
    public private(set) var holders: [Holder] = []
    private var open: [[UInt8]: Int] = [:]

    public init() {}

    /// Reads the CONTAINER_INFO and CONTAINER_OP records of one log (by name or as UNKNOWN[29xx]).
    public mutating func read(_ log: MappedLog) {
        let buf = log.bytes
        guard let base = buf.baseAddress else { return }
        let needles = ["type=CONTAINER_INFO ", "type=UNKNOWN[2908] ", "type=CONTAINER_OP ", "type=UNKNOWN[2900] "]
        var finder = NeedleFinder(needles.map { Array($0.utf8) }, in: buf)
        var hits: [Int] = []
        for k in finder.needles.indices {
            var at = finder.find(k, from: 0)
            while at < buf.count { hits.append(at); at = finder.find(k, from: at + 1) }
        }
        hits.sort()
        for at in hits {
            var s = at
            while s > 0, buf[s - 1] != 0x0A { s -= 1 }
            let e = memchr(base + at, 0x0A, buf.count - at).map { base.distance(to: UnsafeRawPointer($0)) } ?? buf.count
            let line = UnsafeRawBufferPointer(rebasing: buf[s..<e])
            guard case .success(let h) = RecordScanner.scan(line) else { continue }
            let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
            let ms = h.time.totalMilliseconds
            func value(_ name: String, text: Bool = false) -> [UInt8]? {
                name.utf8CString.withUnsafeBytes { n in
                    FieldScanner.valueRange(of: UnsafeRawBufferPointer(rebasing: n.dropLast()), in: body)
                }.map { Self.unquote(UnsafeRawBufferPointer(rebasing: body[$0]), hex: text) }
            }
            if h.type == .containerInfo, let id = value("contid") {
                closeSpan(id, at: ms)
                var labels: [(String, String)] = []
                for f in ["runtime", "id", "name", "image", "pod"] {
                    if let v = value(f, text: true) { labels.append((f, String(decoding: v, as: UTF8.self))) }
                }
                if let l = value("labels", text: true) {
                    for pair in l.split(separator: UInt8(ascii: ",")) {
                        let kv = pair.split(separator: UInt8(ascii: "="), maxSplits: 1)
                        if kv.count == 2 { labels.append((String(decoding: kv[0], as: UTF8.self), String(decoding: kv[1], as: UTF8.self))) }
                    }
                }
                open[id] = holders.count
                holders.append(Holder(id: id, from: ms, until: UInt64.max, labels: labels))
            } else if h.type == .containerOp, FieldScanner.valueRange(of: "res", in: body).map({ body[$0].elementsEqual([UInt8(ascii: "1")]) }) == true {
                if let op = value("op"), op == Array("drop".utf8), let old = value("old-contid") {
                    closeSpan(old, at: ms)
                }
            }
        }
    }

    private mutating func closeSpan(_ id: [UInt8], at ms: UInt64) {
        if let i = open.removeValue(forKey: id) { holders[i].until = ms }
    }

    /// The spans over which a container carried `key=value`.
    public func spans(key: String, value: String) -> [ContainerSelection.Span] {
        holders.filter { h in h.labels.contains { $0.0 == key && $0.1 == value } }
            .map { ContainerSelection.Span(id: $0.id, from: $0.from, until: $0.until) }
    }

    /// A value as written: quotes removed, hex decoded.
    static func unquote(_ v: UnsafeRawBufferPointer, hex: Bool) -> [UInt8] {
        if v.count >= 2, v[0] == UInt8(ascii: "\""), v[v.count - 1] == UInt8(ascii: "\"") { return Array(v[1..<(v.count - 1)]) }
        if hex, let d = AuditText.unhex(Array(v)) { return d }
        return Array(v)
    }
}
