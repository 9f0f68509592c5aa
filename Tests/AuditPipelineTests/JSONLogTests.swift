import Foundation
import TestSupport
import Testing
import AuditCodec
import ContainerEngine
@testable import AuditPipeline

/// contidd's JSON log (`json_log`): every event with its chain and its innermost
/// container's labels beside it (SPEC §9).
@Suite struct JSONLogTests {
    @Test func eventsCarryTheirInnermostContainersLabels() throws {
        let registry = ContainerRegistry()
        registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0))
        registry.apply(.discovered(ProcessKey(pid: 40, start: 2), parent: 1))
        registry.apply(.discovered(ProcessKey(pid: 41, start: 3), parent: 40))
        registry.apply(.discovered(ProcessKey(pid: 42, start: 4), parent: 1))
        registry.applyRecordedRegistration(writer: 1, target: 40, id: 5)
        registry.applyRecordedLabels(id: 5, labels: try ContainerLabels(validating: [("name", "outer \"o\""), ("team", "pay")]))
        registry.applyRecordedRegistration(writer: 40, target: 41, id: 6)
        let dir = makeTemporaryDirectory("json-log")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = try JSONLogSink(path: dir + "/events.json") { registry.labels(of: $0) }
        let pipeline = EventPipeline(attribution: RegistryAttribution(registry: registry), sinks: [sink])
        for l in ["type=SYSCALL msg=audit(1700000000.001:9): arch=c000003e syscall=62 pid=40 key=\"k\"",
                  "type=EOE msg=audit(1700000000.001:9): ",
                  "type=SYSCALL msg=audit(1700000000.002:10): arch=c000003e syscall=62 pid=41 key=\"k\"",
                  "type=EOE msg=audit(1700000000.002:10): ",
                  "type=SYSCALL msg=audit(1700000000.003:11): arch=c000003e syscall=62 pid=42 key=\"k\"",
                  "type=EOE msg=audit(1700000000.003:11): "] {
            Array(l.utf8).withUnsafeBytes { _ = pipeline.push(line: $0) }
        }
        pipeline.finish()
        pipeline.close()
        let lines = String(decoding: FileManager.default.contents(atPath: dir + "/events.json") ?? Data(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        let heads = lines.map { String($0[..<($0.range(of: ",\"records\"")?.lowerBound ?? $0.endIndex)]) }
        #expect(heads == [
            "{\"node\":null,\"serial\":9,\"time\":\"1700000000.001\",\"contid\":\"5\",\"labels\":{\"name\":\"outer \\\"o\\\"\",\"team\":\"pay\"}",
            "{\"node\":null,\"serial\":10,\"time\":\"1700000000.002\",\"contid\":\"6,^5\",\"labels\":{}",
            "{\"node\":null,\"serial\":11,\"time\":\"1700000000.003\",\"contid\":null,\"labels\":{}",
        ])
    }

    @Test func jsonLogIsAnAbsolutePathOrNone() {
        var c = DaemonConfiguration()
        #expect(c.apply("json_log = /var/log/contid/events.json\n", file: "f").isEmpty)
        #expect(c.jsonLog == "/var/log/contid/events.json")
        #expect(c.apply("json_log = none\n", file: "f").isEmpty)
        #expect(c.jsonLog == nil)
        #expect(c.apply("json_log = events.json\n", file: "f").map(\.description) == ["f:1: json_log takes an absolute path, not \"events.json\""])
    }
}
