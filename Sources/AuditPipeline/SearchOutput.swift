// The forms `contid search` prints a matched event in:
//   raw          the event's lines, byte for byte as read (as `ausearch --raw`)
//   interpreted  `----`, then each record as `ausearch -i` shows it: local time, arch, syscall,
//                uids, gids and errnos named, hex-encoded strings decoded
//   json         one object per event (SPEC §11, the form of `contid replay --format json`)

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec

public enum SearchFormat: String, Sendable, CaseIterable {
    case raw, interpreted, json
}

public final class SearchPrinter: SearchSink {
    let format: SearchFormat
    let output: ReplayOutput
    var names = AccountNames()
    var scratch: [UInt8] = []

    public init(format: SearchFormat, output: ReplayOutput) {
        self.format = format
        self.output = output
        scratch.reserveCapacity(1 << 16)
    }

    public func event(_ records: UnsafeBufferPointer<SearchRecord>, node: UnsafeRawBufferPointer?, serial: UInt32, time: AuditTime) {
        switch format {
        case .raw:
            scratch.removeAll(keepingCapacity: true)
            for r in records {
                scratch.append(contentsOf: r.line)
                scratch.append(0x0A)
            }
            scratch.withUnsafeBytes { output.write(bytes: $0) }
        case .json:
            let event = Self.owned(records, node: node, serial: serial, time: time)
            output.write(EventJSON.encode(event, contid: Self.chain(event)) + "\n")
        case .interpreted:
            var text = "----\n"
            for r in records {
                guard let rec = try? AuditRecord(parsing: Array(r.line)) else { continue }
                text += interpret(rec)
                text += "\n"
            }
            output.write(text)
        }
    }

    static func owned(_ records: UnsafeBufferPointer<SearchRecord>, node: UnsafeRawBufferPointer?, serial: UInt32, time: AuditTime) -> AuditEvent {
        let recs = records.compactMap { try? AuditRecord(parsing: Array($0.line)) }
        return AuditEvent(node: node.map { String(decoding: $0, as: UTF8.self) }, serial: serial, time: time, records: recs)
    }

    /// The chain of the event's first CONTAINER_ID record, as written.
    static func chain(_ e: AuditEvent) -> String? {
        e.records.first { $0.type == .containerID }?["contid"]
    }

    /// One record as `ausearch -i` prints it.
    func interpret(_ r: AuditRecord) -> String {
        var out = ""
        if let node = r.node { out += "node=\(node) " }
        out += "type=\(r.typeName) msg=audit(\(Self.localTime(r.time)):\(r.serial)) :"
        var arch: AuditArch?
        for f in r.fields {
            out += " "
            guard f.form != .word else { out += f.name; continue }
            out += f.name + "=" + value(f, record: r, arch: &arch)
        }
        return out
    }

    func value(_ f: AuditField, record r: AuditRecord, arch: inout AuditArch?) -> String {
        let name = f.name
        switch name {
        case "arch":
            arch = AuditArch(field: f.rawValue)
            return arch?.name ?? f.rawValue
        case "syscall":
            if let arch, let n = Int(f.rawValue), let s = arch.syscallName(n) { return s }
        case "exit" where r.type == .syscall:
            if let v = Int(f.rawValue), v < 0, let e = ErrnoName.name(-v) { return "\(e)(\(String(cString: strerror(Int32(-v)))))" }
        case "errno":
            if let v = Int(f.rawValue), let e = ErrnoName.name(abs(v)) { return e }
        case "ses":
            if f.rawValue == "4294967295" { return "unset" }
        case "res" where r.type == .configChange || r.type == .login || r.type.isContidRange:
            if f.rawValue == "1" { return "yes" }
            if f.rawValue == "0" { return "no" }
        case "proctitle":
            if f.form != .quoted, let b = AuditText.unhex(Array(f.rawValue.utf8)) {
                return String(decoding: b.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
            }
        default: break
        }
        if HostLogForm.uidFields.contains(name), let v = UInt32(f.rawValue) { return names.user(v) }
        if HostLogForm.gidFields.contains(name), let v = UInt32(f.rawValue) { return names.group(v) }
        if f.form == .quoted { return f.unquoted }
        if EventJSON.isUntrusted(name, r.type), f.rawValue != "(null)", let b = AuditText.unhex(Array(f.rawValue.utf8)) {
            return String(decoding: b.map { $0 == 0 ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        }
        return f.rawValue
    }

    /// `12/02/2026 05:56:37.026`, local time as ausearch -i prints it.
    static func localTime(_ t: AuditTime) -> String {
        var tt = time_t(t.seconds)
        var tm = Glibc.tm()
        localtime_r(&tt, &tm)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, buf.count, "%m/%d/%Y %H:%M:%S", &tm)
        let ms = String(t.milliseconds)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) + "." + String(repeating: "0", count: 3 - ms.count) + ms
    }
}
