// Whole-event annotation: real assembled events (the Linux 6.18 capture) whose
// tasks are drawn from a registry of live processes, through EventAnnotator —
// what contidd and contid replay do per event, records and all.

import AuditCodec
import AuditPipeline
import ContainerEngine
import Foundation

enum AnnotateBench {
    static func run(registry: ContainerRegistry, pids: [Int32], corpus: String, events count: Int) {
        guard let data = FileManager.default.contents(atPath: corpus) else {
            print("whole events: corpus \(corpus) not readable")
            return
        }
        var templates: [AuditEvent] = []
        let a = EventAssembler { templates.append($0.makeEvent()) }
        for line in data.split(separator: UInt8(ascii: "\n")) { line.withUnsafeBytes { _ = a.push(line: $0) } }
        a.finish()
        templates = templates.filter { $0.first(.syscall) != nil }
        // Give each template task a pid from the registry (the same event shape, other tasks).
        var rng = SplitMix64(seed: 7)
        var events: [AuditEvent] = []
        for i in 0..<4096 {
            var e = templates[i % templates.count]
            let pid = pids[Int(rng.next() % UInt64(pids.count))]
            e.records = e.records.map { r in
                guard r.type == .syscall, let old = r.pid else { return r }
                let text = r.line.replacingOccurrences(of: " pid=\(old) ", with: " pid=\(pid) ")
                return try! AuditRecord(parsing: text)
            }
            events.append(e)
        }
        var annotated = 0
        var records = 0
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            for i in 0..<count {
                let (e, chain) = EventAnnotator.annotate(events[i & 4095], registry: registry)
                if chain != nil { annotated += 1 }
                records &+= e.records.count
            }
        }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("whole events: \(count) (annotated \(annotated), \(records) records out)")
        print("whole events/s: \(Int(Double(count) / seconds))")

        // The same events as contidd and replay annotate them now: planned in one reused
        // EventAnnotation and written as lines into one reused buffer (the host log sink's
        // work), with no owned records built.
        let annotation = EventAnnotation(reserve: true)
        var out: [UInt8] = []
        out.reserveCapacity(1 << 20)
        var scratch: [UInt8] = []
        var linked = 0
        var bytes = 0
        let borrowed = clock.measure {
            for i in 0..<count {
                let e = events[i & 4095]
                annotation.reset()
                annotation.plan(e) { registry.chainBytes(of: $0) }
                if annotation.linkCount > 0 { linked += 1 }
                annotation.appendLines(of: e, to: &out, scratch: &scratch)
                if out.count > 1 << 19 { bytes &+= out.count; out.removeAll(keepingCapacity: true) }
            }
        }
        bytes &+= out.count
        let bs = Double(borrowed.components.seconds) + Double(borrowed.components.attoseconds) / 1e18
        print("pipeline events: \(count) (annotated \(linked), \(bytes) bytes out)")
        print("pipeline events/s: \(Int(Double(count) / bs))")
    }
}
