// The JSON-lines form of an event (SPEC §11):
// {"node":...,"serial":N,"time":"...","contid":"4,^2,^1"|null,"records":[{"type":..,"fields":{..},"raw":".."}]}

import AuditCodec

public enum EventJSON {
    /// Fields the kernel writes as untrusted strings (quoted, or hex when unsafe).
    static let untrustedFields: Set<String> = [
        "comm", "exe", "key", "name", "cwd", "proctitle", "cmd", "ocomm", "path", "dir", "acct",
        "old-chardev", "new-chardev", "data", "root_dir", "cgroup", "grp", "new_group", "watch",
    ]

    public static func encode(_ event: AuditEvent, contid: String?) -> String {
        var out = "{\"node\":"
        if let node = event.node { appendString(node, to: &out) } else { out += "null" }
        out += ",\"serial\":\(event.serial),\"time\":\"\(event.time)\",\"contid\":"
        if let contid { appendString(contid, to: &out) } else { out += "null" }
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
