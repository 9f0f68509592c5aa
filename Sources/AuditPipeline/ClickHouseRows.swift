// One event as one row of contid's fleet store (packaging/clickhouse/events_local.sql),
// written straight from the borrowed event and its annotation into a batch buffer in
// one of ClickHouse's input formats. RowBinary is the default: no escaping and no
// number formatting on our side, no parsing on the server's (Benchmarks/clickhouse.sh
// measures it against TabSeparated and JSONEachRow).

import AuditCodec

/// ClickHouse input formats the sink can write.
public enum ClickHouseRowFormat: String, CaseIterable, Sendable {
    case rowBinary = "RowBinary"
    case tabSeparated = "TabSeparated"
    case jsonEachRow = "JSONEachRow"
}

/// The table's columns, in the order of the DDL (and of every row written).
public enum ClickHouseColumns {
    public static let names = [
        "host", "time", "ms", "serial", "contid", "chain", "labels", "types", "key", "syscall", "success",
        "exit", "pid", "ppid", "uid", "auid", "ses", "comm", "exe", "raw",
    ]
    public static var list: String { names.joined(separator: ", ") }
}

/// Labels of containers, learnt from the CONTAINER_INFO records of the trail (SPEC §6):
/// the innermost ID's `runtime=`, `id=`, `name=`, `image=`, `pod=` and each user label,
/// as `k=v`.
public final class ContainerLabelBook {
    private var labels: [[UInt8]: [[UInt8]]] = [:]
    public init() {}

    public var count: Int { labels.count }

    public func labels(of contid: UnsafeRawBufferPointer) -> [[UInt8]]? {
        guard !labels.isEmpty else { return nil }
        return labels[Array(contid)]
    }

    public func set(_ contid: String, labels list: [String]) {
        labels[Array(contid.utf8)] = list.map { Array($0.utf8) }
    }

    /// Learns from a CONTAINER_INFO record body.
    public func learn(containerInfo body: UnsafeRawBufferPointer) {
        guard let idRange = FieldScanner.valueRange(of: "contid", in: body) else { return }
        var list: [[UInt8]] = []
        func add(_ name: StaticString) {
            guard let r = FieldScanner.valueRange(of: name, in: body) else { return }
            var kv: [UInt8] = []
            name.withUTF8Buffer { kv.append(contentsOf: $0) }
            kv.append(UInt8(ascii: "="))
            kv += Self.decoded(UnsafeRawBufferPointer(rebasing: body[r]))
            list.append(kv)
        }
        add("runtime"); add("id"); add("name"); add("image"); add("pod")
        if let r = FieldScanner.valueRange(of: "labels", in: body) {
            let all = Self.decoded(UnsafeRawBufferPointer(rebasing: body[r]))
            for pair in all.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true) { list.append(Array(pair)) }
        }
        labels[Array(UnsafeRawBufferPointer(rebasing: body[idRange]))] = list
    }

    /// An untrusted value as the kernel writes it: quoted text, or hex.
    static func decoded(_ v: UnsafeRawBufferPointer) -> [UInt8] {
        if let q = v.first, q == UInt8(ascii: "\"") || q == UInt8(ascii: "'") {
            let end = v.count >= 2 && v.last == q ? v.count - 1 : v.count
            return Array(UnsafeRawBufferPointer(rebasing: v[1..<end]))
        }
        if v.elementsEqual("(null)".utf8) { return [] }
        return AuditText.unhex(v) ?? Array(v)
    }
}

/// Writes rows of one format into a byte buffer.
struct ClickHouseRowWriter {
    let format: ClickHouseRowFormat
    private var column = 0

    init(format: ClickHouseRowFormat) { self.format = format }

    // MARK: one row of an event

    /// Appends the row of `event` (annotated by `annotation`) to `out`; `host` names the
    /// event's host when its records carry no `node=`.
    mutating func appendRow(_ event: AuditEventView, annotation: EventAnnotation, host: [UInt8],
                            labels: ContainerLabelBook?, to out: inout [UInt8]) {
        column = 0
        if format == .jsonEachRow { out.append(UInt8(ascii: "{")) }
        // host
        var wroteHost = false
        if event.recordCount > 0 {
            let h = event.header(0)
            if !h.node.isEmpty {
                event.withRecordBytes(0) { string(UnsafeRawBufferPointer(rebasing: $0[Int(h.node.lowerBound)..<Int(h.node.upperBound)]), to: &out) }
                wroteHost = true
            }
        }
        if !wroteHost { host.withUnsafeBytes { string($0, to: &out) } }
        unsigned(event.time.seconds, bytes: 4, to: &out)
        unsigned(UInt64(event.time.milliseconds), bytes: 2, to: &out)
        unsigned(UInt64(event.serial), bytes: 4, to: &out)
        // contid, chain, labels
        annotation.withChain { chain in
            guard let chain, !chain.isEmpty else {
                string(UnsafeRawBufferPointer(start: nil, count: 0), to: &out)
                stringArray(count: 0, to: &out) { _, _ in }
                stringArray(count: 0, to: &out) { _, _ in }
                return
            }
            let ids = chain.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: true)
            func id(_ k: Int) -> UnsafeRawBufferPointer {
                let s = ids[k]
                let skip = s.first == UInt8(ascii: "^") ? 1 : 0
                return UnsafeRawBufferPointer(rebasing: chain[(s.startIndex + skip)..<s.endIndex])
            }
            string(id(0), to: &out)
            stringArray(count: ids.count, to: &out) { k, put in put(id(k)) }
            let list = labels?.labels(of: id(0)) ?? []
            stringArray(count: list.count, to: &out) { k, put in list[k].withUnsafeBytes { put($0) } }
        }
        // types
        var typeCount = 0
        for i in 0..<event.recordCount where event.header(i).type != .eoe { typeCount += 1 }
        let links = annotation.linkCount
        stringArray(count: typeCount + links, to: &out) { k, put in
            if k >= typeCount {
                let t: StaticString = "CONTAINER_ID"
                t.withUTF8Buffer { put(UnsafeRawBufferPointer($0)) }
                return
            }
            var seen = -1
            for i in 0..<event.recordCount {
                let h = event.header(i)
                if h.type == .eoe { continue }
                seen += 1
                if seen == k {
                    event.withRecordBytes(i) { put(UnsafeRawBufferPointer(rebasing: $0[Int(h.typeName.lowerBound)..<Int(h.typeName.upperBound)])) }
                    return
                }
            }
        }
        // the task's facts: the SYSCALL record, else the first record (user messages)
        var task = -1
        for i in 0..<event.recordCount where event.header(i).type == .syscall { task = i; break }
        let isSyscall = task >= 0
        if task < 0, event.recordCount > 0 { task = 0 }
        if task >= 0 {
            let h = event.header(task)
            event.withRecordBytes(task) { line in
                let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
                taskColumns(body, isSyscall: isSyscall, to: &out)
            }
        } else {
            taskColumns(UnsafeRawBufferPointer(start: nil, count: 0), isSyscall: false, to: &out)
        }
        // raw: the annotated lines, newline-separated
        var raw = rawBuffer
        var lineScratch = lineBuffer
        rawBuffer = []
        lineBuffer = []
        raw.removeAll(keepingCapacity: true)
        annotation.forEachLine(of: event, scratch: &lineScratch) { a, b, c in
            if !raw.isEmpty { raw.append(0x0A) }
            raw.append(contentsOf: a)
            if !b.isEmpty { raw.append(contentsOf: b) }
            if !c.isEmpty { raw.append(contentsOf: c) }
        }
        raw.withUnsafeBytes { string($0, to: &out) }
        rawBuffer = raw
        lineBuffer = lineScratch
        switch format {
        case .rowBinary: break
        case .tabSeparated: out.append(0x0A)
        case .jsonEachRow: out.append(UInt8(ascii: "}")); out.append(0x0A)
        }
    }

    /// The raw column and the annotation's scratch, reused.
    private var rawBuffer: [UInt8] = []
    private var lineBuffer: [UInt8] = []

    private mutating func taskColumns(_ body: UnsafeRawBufferPointer, isSyscall: Bool, to out: inout [UInt8]) {
        if let r = FieldScanner.valueRange(of: "key", in: body) {
            string(ContainerLabelBook.decoded(UnsafeRawBufferPointer(rebasing: body[r])), to: &out)
        } else {
            string(UnsafeRawBufferPointer(start: nil, count: 0), to: &out)
        }
        signed(isSyscall ? (FieldScanner.integer("syscall", in: body) ?? -1) : -1, bytes: 4, to: &out)
        var success: Int64 = -1
        if isSyscall, let r = FieldScanner.valueRange(of: "success", in: body) {
            success = UnsafeRawBufferPointer(rebasing: body[r]).elementsEqual("yes".utf8) ? 1 : 0
        }
        signed(success, bytes: 1, to: &out)
        signed(FieldScanner.integer("exit", in: body) ?? 0, bytes: 8, to: &out)
        signed(FieldScanner.integer("pid", in: body) ?? 0, bytes: 4, to: &out)
        signed(FieldScanner.integer("ppid", in: body) ?? 0, bytes: 4, to: &out)
        unsigned(UInt64(truncatingIfNeeded: FieldScanner.integer("uid", in: body) ?? 4294967295), bytes: 4, to: &out)
        unsigned(UInt64(truncatingIfNeeded: FieldScanner.integer("auid", in: body) ?? 4294967295), bytes: 4, to: &out)
        unsigned(UInt64(truncatingIfNeeded: FieldScanner.integer("ses", in: body) ?? 4294967295), bytes: 4, to: &out)
        for name in [0, 1] {
            let r = name == 0 ? FieldScanner.valueRange(of: "comm", in: body) : FieldScanner.valueRange(of: "exe", in: body)
            if let r {
                string(ContainerLabelBook.decoded(UnsafeRawBufferPointer(rebasing: body[r])), to: &out)
            } else {
                string(UnsafeRawBufferPointer(start: nil, count: 0), to: &out)
            }
        }
    }

    // MARK: values

    private mutating func separator(to out: inout [UInt8]) {
        defer { column += 1 }
        switch format {
        case .rowBinary: return
        case .tabSeparated: if column > 0 { out.append(0x09) }
        case .jsonEachRow:
            if column > 0 { out.append(UInt8(ascii: ",")) }
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: ClickHouseColumns.names[column].utf8)
            out.append(UInt8(ascii: "\""))
            out.append(UInt8(ascii: ":"))
        }
    }

    private mutating func string(_ bytes: [UInt8], to out: inout [UInt8]) {
        bytes.withUnsafeBytes { string($0, to: &out) }
    }

    mutating func string(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
        separator(to: &out)
        Self.value(bytes, format: format, quoted: false, to: &out)
    }

    /// One string as a value of `format`; `quoted`: inside a TabSeparated array.
    static func value(_ bytes: UnsafeRawBufferPointer, format: ClickHouseRowFormat, quoted: Bool, to out: inout [UInt8]) {
        switch format {
        case .rowBinary:
            varint(UInt64(bytes.count), to: &out)
            out.append(contentsOf: bytes)
        case .tabSeparated:
            if quoted { out.append(UInt8(ascii: "'")) }
            for b in bytes {
                switch b {
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                case 0x00: out.append(0x5C); out.append(UInt8(ascii: "0"))
                case UInt8(ascii: "'") where quoted: out.append(0x5C); out.append(b)
                default: out.append(b)
                }
            }
            if quoted { out.append(UInt8(ascii: "'")) }
        case .jsonEachRow:
            out.append(UInt8(ascii: "\""))
            for b in bytes {
                switch b {
                case UInt8(ascii: "\""): out.append(0x5C); out.append(b)
                case 0x5C: out.append(0x5C); out.append(0x5C)
                case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
                case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
                case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
                case 0..<0x20:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    out.append(contentsOf: "\\u00".utf8)
                    out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 15)])
                default: out.append(b)
                }
            }
            out.append(UInt8(ascii: "\""))
        }
    }

    /// An Array(String) of `count` elements; `element(k, put)` hands element k's bytes to `put`.
    private mutating func stringArray(count: Int, to out: inout [UInt8],
                                      _ element: (Int, (UnsafeRawBufferPointer) -> Void) -> Void) {
        separator(to: &out)
        let format = self.format
        if format == .rowBinary {
            Self.varint(UInt64(count), to: &out)
            for k in 0..<count { element(k) { Self.value($0, format: format, quoted: false, to: &out) } }
            return
        }
        out.append(UInt8(ascii: "["))
        for k in 0..<count {
            if k > 0 { out.append(UInt8(ascii: ",")) }
            element(k) { Self.value($0, format: format, quoted: format == .tabSeparated, to: &out) }
        }
        out.append(UInt8(ascii: "]"))
    }

    private mutating func unsigned(_ v: UInt64, bytes: Int, to out: inout [UInt8]) {
        separator(to: &out)
        if format == .rowBinary {
            var x = v
            for _ in 0..<bytes { out.append(UInt8(truncatingIfNeeded: x)); x >>= 8 }
        } else {
            Self.decimal(v, to: &out)
        }
    }

    private mutating func signed(_ v: Int64, bytes: Int, to out: inout [UInt8]) {
        separator(to: &out)
        if format == .rowBinary {
            var x = UInt64(bitPattern: v)
            for _ in 0..<bytes { out.append(UInt8(truncatingIfNeeded: x)); x >>= 8 }
        } else {
            if v < 0 { out.append(UInt8(ascii: "-")) }
            Self.decimal(v.magnitude, to: &out)
        }
    }

    static func decimal(_ v: UInt64, to out: inout [UInt8]) {
        if v < 10 { out.append(UInt8(ascii: "0") + UInt8(v)); return }
        let start = out.count
        var x = v
        while x > 0 { out.append(UInt8(ascii: "0") + UInt8(x % 10)); x /= 10 }
        out[start...].reverse()
    }

    static func varint(_ v: UInt64, to out: inout [UInt8]) {
        var x = v
        while x >= 0x80 { out.append(UInt8(truncatingIfNeeded: x) | 0x80); x >>= 7 }
        out.append(UInt8(x))
    }
}
