// Allocations per event on the daemon's event path, source bytes in, sink bytes
// out: N real records (the Linux 6.18 capture, repeated with serials and times
// moved on) through
//   before: EventAssembler -> makeEvent -> annotate (owned copies) -> HostLogWriter.write(event)
//   after:  EventPipeline (borrowed events, EventAnnotation) -> HostLogWriter sink
// with a live-style attribution (pid -> chain from a registry in which every task
// of the capture has an ID) and a `-F contid=` rule filter loaded, writing RAW
// lines to a temporary host log. malloc and
// its kin are counted by the CMallocCounter shim linked into this executable.

import AuditCodec
import AuditPipeline
import CMallocCounter
import ContainerEngine
import Foundation

enum LiveBench {
    static func run(corpus: String, records: Int) {
        guard let data = FileManager.default.contents(atPath: corpus) else {
            print("live: corpus \(corpus) not readable")
            exit(1)
        }
        let source = data.split(separator: UInt8(ascii: "\n")).map { Array($0) }
        let (lines, spans) = expand(source, records: records)
        let registry = makeRegistry(source)
        // A rule filter is loaded, as in contidd: the etcread events of container 103 only.
        var rules = ContainerRuleFilter()
        let (parsed, _) = RuleParser.parse("-a always,exit -F arch=b64 -S openat -F contid=103 -k etcread\n", file: "bench")
        if case let .add(rule, _) = parsed.first?.command { rules.add(rule) }
        let before = measure("before", lines: lines, spans: spans[...], registry: registry, rules: rules, legacy: true)
        let after = measure("after", lines: lines, spans: spans[...], registry: registry, rules: rules, legacy: false)
        print(String(format: "live: allocations per event  before %.2f  after %.2f", before.perEvent, after.perEvent))
        print("live: host logs byte-identical: \(before.log == after.log ? "yes" : "NO")")
    }

    /// Pushes the records through one path; returns allocations per event, counted after
    /// the first `warm` records (first-time growth of buffers and of the assembler's 4096
    /// slots is not the steady state).
    static func measure(_ name: String, lines: [UInt8], spans: ArraySlice<(Int, Int)>, registry: ContainerRegistry,
                        rules: ContainerRuleFilter, legacy: Bool) -> (perEvent: Double, log: Data) {
        let dir = NSTemporaryDirectory() + "contid-live-bench-\(getpid())-\(name)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let log = try! HostLogWriter(directory: dir, maxFileBytes: 0, flush: .none)
        var events = 0
        var allocations: UInt64 = 0
        var eventsAtStart = 0
        let warm = min(spans.count / 5, 40_000)
        let start = ContinuousClock.now
        // One path as two steps: push a scanned record; end a batch (drain, flush).
        let push: (UnsafeRawBufferPointer, RecordHeader) -> Void
        let endBatch: () -> Void
        let eventCount: () -> Int
        if legacy {
            let assembler = EventAssembler(timeoutMilliseconds: 2000) { view in
                events += 1
                // As Daemon.handle does: copy, annotate, filter, write.
                let event = view.makeEvent()
                let annotated = LegacyAnnotator.annotate(event, registry: registry)
                if !rules.isEmpty, let s = event.first(.syscall), let pid = s.pid,
                   !rules.admits(key: s.key, chain: registry.chain(of: pid)) { return }
                try? log.write(annotated.event)
            }
            push = { assembler.push(line: $0, header: $1) }
            endBatch = { assembler.drain(); try? log.flush() }
            eventCount = { events }
        } else {
            let pipeline = EventPipeline(timeoutMilliseconds: 2000, attribution: RegistryAttribution(registry: registry),
                                         filter: ContainerRuleStep(rules: rules, chain: { registry.chain(of: $0) }),
                                         sinks: [log])
            push = { pipeline.push(line: $0, header: $1) }
            endBatch = { pipeline.drain(); try? pipeline.flush() }
            eventCount = { pipeline.events }
        }
        lines.withUnsafeBytes { all in
            allocations = count(after: warm, of: spans.count, events: eventCount, start: &eventsAtStart) { i in
                let s = spans[spans.startIndex + i]
                let line = UnsafeRawBufferPointer(rebasing: all[s.0..<(s.0 + s.1)])
                if case .success(let h) = RecordScanner.scan(line) { push(line, h) }
                if i % 256 == 255 { endBatch() }
            }
        }
        endBatch()
        events = eventCount()
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let counted = events - eventsAtStart
        let perEvent = Double(allocations) / Double(max(counted, 1))
        print(String(format: "live %@: %d records, %d events (%d counted after %d warm-up records), %d allocations (%.3f per event), %.0f events/s, host log %d bytes",
                     name, spans.count, events, counted, warm, allocations, perEvent, Double(events) / seconds, log.currentSize))
        log.close()
        return (perEvent, FileManager.default.contents(atPath: dir + "/audit.log") ?? Data())
    }

    /// Runs `body(i)` for i in 0..<n, counting allocations from i == warm on; `start` gets
    /// the events handed out before counting began.
    static func count(after warm: Int, of n: Int, events: () -> Int, start: inout Int, _ body: (Int) -> Void) -> UInt64 {
        for i in 0..<warm { body(i) }
        start = events()
        let a = cmc_allocations()
        cmc_set_counting(1)
        for i in warm..<n { body(i) }
        cmc_set_counting(0)
        return cmc_allocations() - a
    }

    /// The capture repeated until `records` lines, each copy's serials and times moved on
    /// past the previous copy's (as Benchmarks/expand-capture.py does): one long dense trail.
    static func expand(_ source: [[UInt8]], records: Int) -> ([UInt8], [(Int, Int)]) {
        var parsed: [(head: [UInt8], ms: UInt64, serial: UInt64, daemon: Bool, tail: [UInt8])] = []
        for line in source {
            guard case .success(let h) = line.withUnsafeBytes({ RecordScanner.scan($0) }),
                  let open = line.firstIndex(of: UInt8(ascii: "(")), let close = line[open...].firstIndex(of: UInt8(ascii: ")"))
            else { continue }
            parsed.append((Array(line[...open]), h.time.totalMilliseconds, UInt64(h.serial), h.type.isDaemonRecord,
                           Array(line[close...])))
        }
        let kernel = parsed.filter { !$0.daemon }.map(\.serial)
        let serialSpan = (kernel.max() ?? 0) - (kernel.min() ?? 0) + 1
        let times = parsed.map(\.ms)
        let timeSpan = (times.max() ?? 0) - (times.min() ?? 0) + 1000
        var out: [UInt8] = []
        var spans: [(Int, Int)] = []
        var copy: UInt64 = 0
        while spans.count < records {
            for p in parsed where !p.daemon {
                guard spans.count < records else { break }
                let t = p.ms + copy * timeSpan
                let start = out.count
                out += p.head
                out += "\(t / 1000).\(String(format: "%03d", Int(t % 1000))):\((p.serial + copy * serialSpan) & 0xFFFF_FFFF)".utf8
                out += p.tail
                spans.append((start, out.count - start))
            }
            copy += 1
        }
        return (out, spans)
    }

    /// Every task of the capture registered: half in container 100+k, half nested under it.
    static func makeRegistry(_ source: [[UInt8]]) -> ContainerRegistry {
        let registry = ContainerRegistry()
        registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0))
        var pids = Set<Int32>()
        for line in source {
            guard let r = try? AuditRecord(parsing: line) else { continue }
            if let p = r.pid, p > 1 { pids.insert(p) }
        }
        var generation: UInt64 = 2
        for (k, pid) in pids.sorted().enumerated() {
            registry.apply(.discovered(ProcessKey(pid: pid, start: generation), parent: 1))
            generation += 1
            registry.applyRecordedRegistration(writer: 1, target: pid, id: try! ContainerID(parsing: String(100 + k % 7)))
        }
        _ = registry.takeRecords()
        return registry
    }
}
