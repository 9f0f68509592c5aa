// Attaches container IDs to an owned event, in the records of SPEC §6: the cold
// path (offline attribution, tests). The live path keeps the event borrowed and
// the same `EventAnnotation` beside it.

import AuditCodec
import ContainerEngine

public enum EventAnnotator {
    /// The task an event is about: the pid of its SYSCALL record, or of a user message.
    public static func taskPID(of event: AuditEvent) -> Int32? {
        if let s = event.first(.syscall) { return s.pid }
        if let r = event.records.first, r.type.isUserMessage { return r.pid }
        return nil
    }

    /// The annotated event and the task's chain text (nil when the task has no ID).
    /// An event that already carries CONTAINER_ID records (a contid log read back) is
    /// left as it is, and its chain is taken from them.
    public static func annotate(_ event: AuditEvent, registry: ContainerRegistry) -> (event: AuditEvent, contid: String?) {
        let annotation = EventAnnotation()
        annotation.plan(event) { registry.chainBytes(of: $0) }
        guard !annotation.isEmpty else { return (event, annotation.chain) }
        var out = event
        out.records = annotation.records(of: event)
        return (out, annotation.chain)
    }
}
