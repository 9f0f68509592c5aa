// Attaches container IDs to an assembled event, in the records of SPEC §6:
// the SYSCALL record (or a user message) of a task with an ID gets ` record=N`
// and a CONTAINER_ID record `record=N contid=<chain>` joins the event; so does
// each OBJ_PID target (signals, ptrace) with an ID.

import AuditCodec
import ContainerEngine

public enum EventAnnotator {
    /// The task an event is about: the pid of its SYSCALL record, or of a user message.
    public static func taskPID(of event: AuditEvent) -> Int32? {
        if let s = event.first(.syscall) { return s.pid }
        if let r = event.records.first, isUserMessage(r.type) { return r.pid }
        return nil
    }

    /// Types a user-space program sends through the kernel (AUDIT_USER, 1100-1199, 2100-2999),
    /// other than contid's own records.
    public static func isUserMessage(_ t: AuditRecordType) -> Bool {
        let v = t.rawValue
        return v == 1005 || (1100...1199).contains(v) || ((2100...2999).contains(v) && !(2900...2999).contains(v))
    }

    /// The annotated event and the task's chain text (nil when the task has no ID).
    /// An event that already carries CONTAINER_ID records (a contid log read back) is
    /// left as it is, and its chain is taken from them.
    public static func annotate(_ event: AuditEvent, registry: ContainerRegistry) -> (event: AuditEvent, contid: String?) {
        if event.records.contains(where: { $0.type == .containerID }) {
            return (event, existingChain(event))
        }
        var records = event.records
        var added: [AuditRecord] = []
        var n = 0
        var taskChain: String? = nil
        var buffer: [UInt8] = []
        func link(_ index: Int, pid: Int32) -> String? {
            buffer.removeAll(keepingCapacity: true)
            guard registry.appendAnnotation(record: n + 1, pid: pid, to: &buffer) else { return nil }
            n += 1
            records[index] = appending(" record=\(n)", to: records[index])
            added.append(AuditRecord.make(type: .containerID, time: event.time, serial: event.serial,
                                          body: String(decoding: buffer, as: UTF8.self), node: event.node))
            return registry.chain(of: pid).description
        }
        if let i = records.firstIndex(where: { $0.type == .syscall }), let pid = records[i].pid {
            taskChain = link(i, pid: pid)
        } else if let first = records.first, isUserMessage(first.type), let pid = first.pid {
            taskChain = link(0, pid: pid)
        }
        for i in records.indices where records[i].type == .objPID {
            if let opid = records[i]["opid"].flatMap({ Int32($0) }) { _ = link(i, pid: opid) }
        }
        guard !added.isEmpty else { return (event, nil) }
        var out = event
        out.records = records + added
        return (out, taskChain)
    }

    /// The chain of an already annotated event: the CONTAINER_ID linked to record=1, else the first.
    static func existingChain(_ event: AuditEvent) -> String? {
        let ids = event.records.filter { $0.type == .containerID }
        let linked = ids.first { $0["record"] == "1" } ?? ids.first
        return linked?["contid"]
    }

    /// A record with text appended to its body (before an ENRICHED part, if any).
    static func appending(_ suffix: String, to r: AuditRecord) -> AuditRecord {
        var text = Array(r.text[0..<Int(r.header.bodyEnd)])
        text += suffix.utf8
        text += r.text[Int(r.header.bodyEnd)...]
        return try! AuditRecord(parsing: text)  // the header is unchanged: still a valid line
    }
}
