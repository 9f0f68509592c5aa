import Foundation
import TestSupport
import Testing
import AuditCodec
import ContainerEngine
@testable import AuditPipeline

/// The event pipeline: borrowed events annotated beside them, filtered, written by sinks.
@Suite struct EventPipelineTests {
    static var corpusPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/corpus/captured-linux-6.18-raw.log").path
    }

    /// A registry in which the capture's tasks have IDs: every third one none, the others 7 or 9 nested in 7.
    static func registry(lines: [[UInt8]]) -> ContainerRegistry {
        let registry = ContainerRegistry()
        registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0))
        var pids = Set<Int32>()
        for l in lines { if let r = try? AuditRecord(parsing: l), let p = r.pid, p > 1 { pids.insert(p) } }
        var g: UInt64 = 2
        let sorted = pids.sorted()
        for pid in sorted {
            registry.apply(.discovered(ProcessKey(pid: pid, start: g), parent: 1))
            g += 1
        }
        for (k, pid) in sorted.enumerated() where k % 3 != 0 {
            registry.applyRecordedRegistration(writer: 1, target: pid, id: try! ContainerID(parsing: "7"))
            if k % 3 == 2 { registry.applyRecordedRegistration(writer: pid, target: pid, id: try! ContainerID(parsing: "9")) }
        }
        _ = registry.takeRecords()
        return registry
    }

    static func lines() throws -> [[UInt8]] {
        let data = try Data(contentsOf: URL(fileURLWithPath: corpusPath))
        return data.split(separator: UInt8(ascii: "\n")).map { Array($0) }
    }

    @Test func theLivePathWritesTheHostLogByteForByteAsTheOwnedPath() throws {
        let lines = try Self.lines()
        let registry = Self.registry(lines: lines)
        let owned = makeTemporaryDirectory("pipeline-owned"), live = makeTemporaryDirectory("pipeline-live")
        defer { try? FileManager.default.removeItem(atPath: owned); try? FileManager.default.removeItem(atPath: live) }

        let ownedLog = try HostLogWriter(directory: owned)
        let assembler = EventAssembler(timeoutMilliseconds: 2000) { view in
            try? ownedLog.write(EventAnnotator.annotate(view.makeEvent(), registry: registry).event)
        }
        let liveLog = try HostLogWriter(directory: live)
        let pipeline = EventPipeline(timeoutMilliseconds: 2000, attribution: RegistryAttribution(registry: registry), sinks: [liveLog])
        for l in lines {
            l.withUnsafeBytes { _ = assembler.push(line: $0); _ = pipeline.push(line: $0) }
        }
        assembler.finish()
        pipeline.finish()
        ownedLog.close()
        pipeline.close()
        let a = fileContents(owned + "/audit.log"), b = fileContents(live + "/audit.log")
        #expect(a == b)
        let written = b.split(separator: "\n")
        #expect(pipeline.events == 941)
        #expect(liveLog.eventsWritten == 941)
        #expect(written.count == 4000 + written.filter { $0.hasPrefix("type=CONTAINER_ID ") }.count)
        #expect(written.filter { $0.hasPrefix("type=CONTAINER_ID ") }.count == 553)
        #expect(written.filter { $0.hasSuffix("contid=9,^7") }.count == 274)
    }

    @Test func annotationLinksTheTaskAndObjectTargetsAndAddsTheirRecords() throws {
        let registry = ContainerRegistry()
        registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0))
        registry.apply(.discovered(ProcessKey(pid: 40, start: 2), parent: 1))
        registry.apply(.discovered(ProcessKey(pid: 41, start: 3), parent: 1))
        registry.applyRecordedRegistration(writer: 1, target: 40, id: try ContainerID(parsing: "5"))
        registry.applyRecordedRegistration(writer: 1, target: 41, id: try ContainerID(parsing: "6"))
        let out = CollectedOutput()
        let sink = RawLinesSink(output: out)
        let pipeline = EventPipeline(attribution: RegistryAttribution(registry: registry), sinks: [sink])
        for l in ["node=h type=SYSCALL msg=audit(1700000000.001:9): arch=c000003e syscall=62 pid=40 key=\"k\"\u{1D}ARCH=x86_64",
                  "node=h type=OBJ_PID msg=audit(1700000000.001:9): opid=41 oauid=0",
                  "node=h type=EOE msg=audit(1700000000.001:9): "] {
            _ = Array(l.utf8).withUnsafeBytes { pipeline.push(line: $0) }
        }
        pipeline.finish()
        pipeline.close()
        #expect(out.text == """
            node=h type=SYSCALL msg=audit(1700000000.001:9): arch=c000003e syscall=62 pid=40 key="k" record=1\u{1D}ARCH=x86_64
            node=h type=OBJ_PID msg=audit(1700000000.001:9): opid=41 oauid=0 record=2
            node=h type=CONTAINER_ID msg=audit(1700000000.001:9): record=1 contid=5
            node=h type=CONTAINER_ID msg=audit(1700000000.001:9): record=2 contid=6

            """)
    }

    final class CountingSink: EventSink {
        var accepted: [UInt32] = []
        var lost = 0
        var flushes = 0
        func accept(_ event: AuditEventView, annotation: EventAnnotation) { accepted.append(event.serial) }
        func eventsLost(_ count: Int) { lost += count }
        func flush() { flushes += 1 }
    }

    final class DropOdd: EventAttribution {
        func observe(_ event: AuditEventView, annotation: EventAnnotation) -> Bool { event.serial % 2 == 0 }
        func chainBytes(of pid: Int32) -> [UInt8]? { nil }
    }

    @Test func sinksLearnOfLossesAndAttributionCanKeepEventsFromThem() {
        let sink = CountingSink()
        let pipeline = EventPipeline(attribution: DropOdd(), sinks: [sink])
        for s in [10, 11, 12, 15, 16] {
            _ = Array("type=SYSCALL msg=audit(1700000000.000:\(s)): pid=1".utf8).withUnsafeBytes { pipeline.push(line: $0) }
        }
        pipeline.finish()
        pipeline.close()
        #expect(sink.accepted == [10, 12, 16])
        #expect(sink.lost == 2)
        #expect(sink.flushes == 1)
        #expect(pipeline.eventsDropped == 2)
    }

    @Test func theRuleStepFiltersByKeyAndChainFromTheBytes() throws {
        var rules = ContainerRuleFilter()
        let (parsed, _) = RuleParser.parse("-a always,exit -S openat -F contid=7 -k mine\n", file: "f")
        guard case let .add(rule, _) = parsed[0].command else { Issue.record("no rule"); return }
        rules.add(rule)
        let chains: [Int32: ContainerChain] = [40: ContainerChain([8, 7]), 41: ContainerChain([8])]
        let sink = CountingSink()
        let pipeline = EventPipeline(filter: ContainerRuleStep(rules: rules, chain: { chains[$0] ?? .unset }), sinks: [sink])
        let bodies = ["pid=40 key=\"mine\"", "pid=41 key=\"mine\"", "pid=41 key=\"other\"", "pid=42 key=6D696E65",
                      "comm=\"pid=40\" pid=41 key=(null)"]
        for (i, b) in bodies.enumerated() {
            _ = Array("type=SYSCALL msg=audit(1700000000.000:\(i + 1)): \(b)".utf8).withUnsafeBytes { pipeline.push(line: $0) }
        }
        pipeline.finish()
        #expect(sink.accepted == [1, 3, 5])
        #expect(pipeline.eventsFiltered == 2)
    }
}
