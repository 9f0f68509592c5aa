// The annotator as it was before the event pipeline (commit 268e802's
// EventAnnotator, owned copies of every record), kept here only as the "before"
// reference of `contid-bench live`.

import AuditCodec
import ContainerEngine

enum LegacyAnnotator {
    static func isUserMessage(_ t: AuditRecordType) -> Bool {
        let v = t.rawValue
        return v == 1005 || (1100...1199).contains(v) || ((2100...2999).contains(v) && !(2900...2999).contains(v))
    }

    /// The annotated event and the task's chain text (nil when the task has no ID).
    /// An event that already carries CONTAINER_ID records (a contid log read back) is
    /// left as it is, and its chain is taken from them.
    static func annotate(_ event: AuditEvent, registry: ContainerRegistry) -> (event: AuditEvent, contid: String?) {
        guard let template = event.records.first else { return (event, nil) }
        var task: Int? = nil
        var hasObjects = false
        for (i, r) in event.records.enumerated() {
            switch r.type {
            case .containerID: return (event, existingChain(event))
            case .syscall where task == nil: task = i
            case .objPID: hasObjects = true
            default: break
            }
        }
        if task == nil, isUserMessage(template.type) { task = 0 }
        var out = event
        out.records.reserveCapacity(event.records.count + 1 + (hasObjects ? 2 : 0))
        var n = 0
        var taskChain: String? = nil
        var body: [UInt8] = []
        func link(_ index: Int, pid: Int32) -> Bool {
            body.removeAll(keepingCapacity: true)
            guard registry.appendAnnotation(record: n + 1, pid: pid, to: &body) else { return false }
            n += 1
            out.records[index] = appending(record: n, to: out.records[index])
            out.records.append(containerIDRecord(like: template, body: body))
            return true
        }
        if let t = task, let pid = event.records[t].pid, link(t, pid: pid) {
            taskChain = registry.chainBytes(of: pid).map { String(decoding: $0, as: UTF8.self) }
        }
        if hasObjects {
            for i in event.records.indices where event.records[i].type == .objPID {
                if let opid = event.records[i]["opid"].flatMap({ Int32($0) }) { _ = link(i, pid: opid) }
            }
        }
        return (n == 0 ? event : out, taskChain)
    }

    /// The chain of an already annotated event: the CONTAINER_ID linked to record=1, else the first.
    static func existingChain(_ event: AuditEvent) -> String? {
        let ids = event.records.filter { $0.type == .containerID }
        let linked = ids.first { $0["record"] == "1" } ?? ids.first
        return linked?["contid"]
    }

    /// `[node=N ]type=CONTAINER_ID msg=audit(T:S): <body>`, stamped like `template`.
    static func containerIDRecord(like template: AuditRecord, body: [UInt8]) -> AuditRecord {
        let h = template.header
        var text: [UInt8] = []
        text.reserveCapacity(64 + body.count)
        if !h.node.isEmpty { text += template.text[0..<Int(h.typeName.lowerBound)] } else { text += "type=".utf8 }
        text += "CONTAINER_ID".utf8
        text += template.text[Int(h.typeName.upperBound)..<Int(h.bodyStart)]
        if !h.hasColon { text.append(UInt8(ascii: ":")) }
        text.append(UInt8(ascii: " "))
        let bodyStart = text.count - 1
        text += body
        // The header is the template's, moved: no need to scan the line again.
        let typeStart = Int(h.typeName.lowerBound)
        let header = RecordHeader(
            type: .containerID, node: h.node, typeName: Int32(typeStart)..<Int32(typeStart + 12),
            time: h.time, serial: h.serial, hasColon: true,
            bodyStart: Int32(bodyStart), bodyEnd: Int32(text.count), length: Int32(text.count))
        return AuditRecord(text: text, header: header)
    }

    /// A record with ` record=N` appended to its body (before an ENRICHED part, if any).
    static func appending(record n: Int, to r: AuditRecord) -> AuditRecord {
        var text: [UInt8] = []
        text.reserveCapacity(r.text.count + 12)
        text += r.text[0..<Int(r.header.bodyEnd)]
        text += " record=".utf8
        text += String(n).utf8
        text += r.text[Int(r.header.bodyEnd)...]
        var header = r.header
        let grown = Int32(text.count - r.text.count)
        header.bodyEnd += grown
        header.length += grown
        return AuditRecord(text: text, header: header)
    }
}
