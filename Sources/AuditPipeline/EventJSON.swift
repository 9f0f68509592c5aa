// The JSON-lines form of an event (SPEC §11):
// {"node":...,"serial":N,"time":"...","contid":"4,^2,^1"|null,"labels":{"name":"web",...},"records":[{"type":..,"fields":{..},"raw":".."}]}
// `labels` (the innermost container's, SPEC §9) is written when the caller knows them:
// contidd's JSON log always has it ({} for an event without an ID).

#if canImport(Glibc)
import Glibc
#endif
import AuditCodec
import ContainerEngine

public enum EventJSON {
    /// Fields the kernel writes as untrusted strings (quoted, or hex when unsafe).
    static let untrustedFields: Set<String> = [
        "comm", "exe", "key", "name", "cwd", "proctitle", "cmd", "ocomm", "path", "dir", "acct",
        "old-chardev", "new-chardev", "data", "root_dir", "cgroup", "grp", "new_group", "watch",
    ]

    public static func encode(_ event: AuditEvent, contid: String?, labels: ContainerLabels? = nil) -> String {
        var out = "{\"node\":"
        if let node = event.node { appendString(node, to: &out) } else { out += "null" }
        out += ",\"serial\":\(event.serial),\"time\":\"\(event.time)\",\"contid\":"
        if let contid { appendString(contid, to: &out) } else { out += "null" }
        if let labels {
            out += ",\"labels\":{"
            for (i, l) in labels.enumerated() {
                if i > 0 { out += "," }
                appendString(l.key, to: &out)
                out += ":"
                appendString(l.value, to: &out)
            }
            out += "}"
        }
        if event.isLate { out += ",\"late\":true" }
        out += ",\"records\":["
        for (k, r) in event.records.enumerated() {
            if k > 0 { out += "," }
            out += "{\"type\":"
            appendString(r.typeName, to: &out)
            out += ",\"fields\":{"
            var first = true
            for f in r.fields where f.form != .word {
                if !first { out += "," }
                first = false
                appendString(f.name, to: &out)
                out += ":"
                appendValue(f, record: r, to: &out)
            }
            out += "}"
            let enriched = r.enrichedFields
            if !enriched.isEmpty {
                out += ",\"interpreted\":{"
                for (j, f) in enriched.enumerated() where f.form != .word {
                    if j > 0 { out += "," }
                    appendString(f.name, to: &out)
                    out += ":"
                    appendString(f.unquoted, to: &out)
                }
                out += "}"
            }
            out += ",\"raw\":"
            appendString(r.line, to: &out)
            out += "}"
        }
        out += "]}"
        return out
    }

    static func appendValue(_ f: AuditField, record: AuditRecord, to out: inout String) {
        switch f.form {
        case .null:
            out += "null"
        case .bare where isUntrusted(f.name, record.type):
            if let bytes = AuditText.unhex(Array(f.rawValue.utf8)) {
                appendString(String(decoding: bytes, as: UTF8.self), to: &out)
            } else {
                appendString(f.rawValue, to: &out)
            }
        default:
            appendString(f.unquoted, to: &out)
        }
    }

    static func isUntrusted(_ name: String, _ type: AuditRecordType) -> Bool {
        if untrustedFields.contains(name) { return true }
        // EXECVE arguments: a0, a1, a1[0] (but not a1_len); SYSCALL's a0..a3 are numbers.
        if type == .execve, name.first == "a", !name.hasSuffix("_len") {
            return name.dropFirst().allSatisfy { $0.isNumber || $0 == "[" || $0 == "]" }
        }
        return false
    }

    /// Appends a JSON string literal.
    public static func appendString(_ s: String, to out: inout String) {
        out += "\""
        var needs = false
        for b in s.utf8 where b < 0x20 || b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { needs = true; break }
        if !needs { out += s; out += "\""; return }
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }
}

/// contidd's JSON-lines log (`json_log`): one object per event written to the host
/// log, with its chain and its innermost container's labels, for shippers.
public final class JSONLogSink: EventSink {
    public let path: String
    private let labels: (ContainerID) -> ContainerLabels
    private var fd: Int32
    private var buffer: [UInt8] = []

    /// `labels`: a live container's labels (the registry's).
    public init(path: String, labels: @escaping (ContainerID) -> ContainerLabels) throws {
        self.path = path
        self.labels = labels
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HostLogError(path: path, operation: "open", errno: errno) }
    }

    deinit { close() }

    public func accept(_ event: AuditEventView, annotation: EventAnnotation) throws {
        let chain = annotation.chain
        let innermost = chain.flatMap { try? ContainerID(parsing: String($0.prefix { $0 != "," })) }
        let line = EventJSON.encode(annotation.makeEvent(event), contid: chain,
                                    labels: innermost.map(labels) ?? ContainerLabels())
        buffer += line.utf8
        buffer.append(0x0A)
        if buffer.count >= 1 << 20 { try flush() }
    }

    public func flush() throws {
        var off = 0
        defer { buffer.removeFirst(off) }
        while off < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                throw HostLogError(path: path, operation: "write", errno: errno)
            }
            off += n
        }
    }

    public func close() {
        guard fd >= 0 else { return }
        try? flush()
        Glibc.close(fd)
        fd = -1
    }
}
