import Foundation
import TestSupport
import Testing
import AuditCodec
import ContainerEngine
@testable import AuditPipeline

/// The router: destination sets, the host trail's guarantees, per-container logs, losses.
@Suite struct RoutingTests {
    /// Collects what it is offered.
    final class Recorder: RouteDestination {
        let name: String
        var serials: [UInt32] = []
        var routed: [RoutedEvent] = []
        init(_ name: String) { self.name = name }
        func offer(_ event: AuditEventView, annotation: EventAnnotation, routed: RoutedEvent) {
            serials.append(event.serial)
            self.routed.append(routed)
        }
        func flush() throws {}
        var queueDepth: Int { 0 }
    }

    final class HostRecorder: EventSink {
        var serials: [UInt32] = []
        func accept(_ event: AuditEventView, annotation: EventAnnotation) throws { serials.append(event.serial) }
        func flush() throws {}
    }

    /// Sends everything with serial >= 100 to `set`, the rest nowhere-specific (nil).
    final class SerialDecider: RouteDecider {
        let set: DestinationSet
        init(_ set: DestinationSet) { self.set = set }
        func destinations(_ event: AuditEventView, chain: ContainerChain) -> DestinationSet? {
            event.serial >= 100 ? set : nil
        }
    }

    static func makeRegistry() -> ContainerRegistry {
        let r = ContainerRegistry()
        r.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0))
        r.apply(.discovered(ProcessKey(pid: 50, start: 2), parent: 1))
        r.apply(.discovered(ProcessKey(pid: 51, start: 3), parent: 50))
        r.applyRecordedRegistration(writer: 1, target: 50, id: 7)
        r.applyRecordedRegistration(writer: 50, target: 51, id: 9)
        _ = r.takeRecords()
        return r
    }

    static func line(serial: Int, pid: Int, type: String = "SYSCALL") -> String {
        if type == "SYSCALL" {
            return "type=SYSCALL msg=audit(1700000000.100:\(serial)): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=1 a2=0 a3=0 items=1 ppid=1 pid=\(pid) auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"cat\" exe=\"/usr/bin/cat\" subj=unconfined key=\"k\""
        }
        return "type=\(type) msg=audit(1700000000.100:\(serial)): pid=\(pid) uid=0 auid=0 ses=1 msg='op=x res=1'"
    }

    /// Runs lines through a pipeline whose only sink is `router`.
    static func run(_ lines: [String], router: Router) {
        let pipeline = EventPipeline(timeoutMilliseconds: 2000, attribution: RegistryAttribution(registry: makeRegistry()), sinks: [router])
        for l in lines { Array(l.utf8).withUnsafeBytes { _ = pipeline.push(line: $0) } }
        pipeline.finish()
        pipeline.close()
    }

    @Test func withoutRulesEveryEventGoesToTheHostAndItsContainer() {
        let host = HostRecorder(), logs = Recorder("container-log"), readers = Recorder("readers"), named = Recorder("central")
        let router = Router(host: [host], containerLogs: logs, readers: readers, named: [named])
        Self.run([Self.line(serial: 1, pid: 50), Self.line(serial: 2, pid: 1), Self.line(serial: 3, pid: 51)], router: router)
        #expect(host.serials == [1, 2, 3])
        #expect(logs.serials == [1, 3])  // a host task has no container log
        #expect(readers.serials == [1, 2, 3])
        #expect(named.serials == [])  // a named destination only when a rule names it
        #expect(readers.routed.map(\.chain.description) == ["7", "-1", "9,^7"])
        #expect(readers.routed.allSatisfy { $0.destinations == .default })
    }

    @Test func aRuleSetIsTheWholeSetAndProtectedRecordsStillReachTheHost() {
        let host = HostRecorder(), logs = Recorder("container-log"), named = Recorder("central")
        let router = Router(host: [host], containerLogs: logs, named: [named],
                            decider: SerialDecider(DestinationSet.container.union(.named(0))))
        Self.run([Self.line(serial: 1, pid: 50), Self.line(serial: 100, pid: 50), Self.line(serial: 101, pid: 50, type: "CONFIG_CHANGE"),
                  Self.line(serial: 102, pid: 50, type: "USER_AUTH")], router: router)
        // 100 goes only to the container and the named destination; the protected ones also to the host.
        // (Single-record events complete at once, before the SYSCALL events: compare sorted.)
        #expect(host.serials.sorted() == [1, 101, 102])
        #expect(logs.serials.sorted() == [1, 100, 102])  // a kernel CONFIG_CHANGE carries no task chain
        #expect(named.serials.sorted() == [100, 101, 102])
        #expect(router.counters.offHost == 1)
        #expect(zip(named.serials, named.routed).filter { $0.1.isProtected }.map(\.0).sorted() == [101, 102])

        // contid's own records (CONTAINER_LOST coming back through the kernel) stay on the host trail.
        let own = Recorder("central"), ownHost = HostRecorder()
        Self.run([Self.line(serial: 200, pid: 50, type: "CONTAINER_LOST")],
                 router: Router(host: [ownHost], named: [own], decider: SerialDecider(.named(0))))
        #expect(ownHost.serials == [200] && own.serials.isEmpty)
    }

    @Test func anEmptySetSendsTheEventNowhere() {
        let host = HostRecorder()
        let router = Router(host: [host], decider: SerialDecider(.none))
        Self.run([Self.line(serial: 1, pid: 50), Self.line(serial: 100, pid: 50)], router: router)
        #expect(host.serials == [1])
        #expect(router.counters.nowhere == 1)
    }

    @Test func destinationNamesResolveToTheirBitsAndUnknownNamesAreNamed() {
        let names = ["central", "a-daemon"]
        let set = try! DestinationSet.resolve([.host, .named("a-daemon")], names: names).get()
        #expect(set.includesHost && !set.includesContainer && set.includesNamed(1) && !set.includesNamed(0))
        guard case .failure(let e) = DestinationSet.resolve([DestinationRef("centrl")], names: names) else {
            Issue.record("an unknown name resolved")
            return
        }
        #expect(e.name == "centrl")
        #expect(DestinationRef("host") == .host && DestinationRef("container") == .container)
    }

    @Test func lossesAreReportedAtMostOncePerSecondPerDestinationAndContainer() {
        let book = LossBook()
        let a = LossBook.Key(destination: "reader:812", contid: 7, cause: .queueFull, protected: false)
        let ap = LossBook.Key(destination: "reader:812", contid: 7, cause: .queueFull, protected: true)
        let b = LossBook.Key(destination: "reader:812", contid: 9, cause: .queueFull, protected: false)
        book.count(a, 5)
        book.count(ap, 1)
        book.count(b, 2)
        let first = book.takeReports(nowMilliseconds: 10_000).map(\.body)
        #expect(first.count == 3)
        #expect(first.contains("dest=\"reader:812\" contid=7 lost=5 reason=queue-full"))
        #expect(first.contains("dest=\"reader:812\" contid=7 lost=1 reason=queue-full-protected"))
        #expect(first.contains("dest=\"reader:812\" contid=9 lost=2 reason=queue-full"))
        book.count(a, 3)
        #expect(book.takeReports(nowMilliseconds: 10_500).isEmpty)  // within the second: held
        book.count(a, 4)
        #expect(book.takeReports(nowMilliseconds: 11_000).map(\.body) == ["dest=\"reader:812\" contid=7 lost=7 reason=queue-full"])
        book.count(b, 1)
        #expect(book.takeReports(nowMilliseconds: 11_001, all: true).count == 1)  // at exit: everything
        #expect(book.total == 16)
        #expect(book.dropped(destination: "reader:812") == 16)
    }

    @Test func containerLogsHoldNestedDescendantsAndRotateWhenAnIDIsRegisteredAgain() throws {
        let dir = makeTemporaryDirectory("container-logs")
        defer { removeTree(dir) }
        var creation: [ContainerID: UInt64] = [7: 1, 9: 2]
        let logs = ContainerLogs(directory: dir + "/containers", settings: .init(), losses: LossBook()) { creation[$0] }
        let router = Router(host: [HostRecorder()], containerLogs: logs)
        Self.run([Self.line(serial: 1, pid: 50), Self.line(serial: 2, pid: 51), Self.line(serial: 3, pid: 1)], router: router)
        let seven = fileContents(dir + "/containers/7/audit.log"), nine = fileContents(dir + "/containers/9/audit.log")
        #expect(seven.contains(":1)") && seven.contains(":2)") && !seven.contains(":3)"))
        #expect(!nine.contains(":1)") && nine.contains(":2)"))
        #expect(nine.contains("type=CONTAINER_ID msg=audit(1700000000.100:2): record=1 contid=9,^7"))

        // ID 9 registered again (a new creation): its old file is rotated away before the new events.
        creation[9] = 5
        let router2 = Router(host: [HostRecorder()], containerLogs: ContainerLogs(directory: dir + "/containers", settings: .init(), losses: LossBook()) { creation[$0] })
        Self.run([Self.line(serial: 10, pid: 51)], router: router2)
        let renewed = fileContents(dir + "/containers/9/audit.log"), old = fileContents(dir + "/containers/9/audit.log.1")
        #expect(renewed.contains(":10)") && !renewed.contains(":2)"))
        #expect(old.contains(":2)"))
        // The same registration after a restart appends.
        let router3 = Router(host: [HostRecorder()], containerLogs: ContainerLogs(directory: dir + "/containers", settings: .init(), losses: LossBook()) { creation[$0] })
        Self.run([Self.line(serial: 11, pid: 51)], router: router3)
        let appended = fileContents(dir + "/containers/9/audit.log")
        #expect(appended.contains(":10)") && appended.contains(":11)"))
    }

    @Test func nodeNameGoesBeforeEveryLineThatHasNone() throws {
        let dir = makeTemporaryDirectory("node-name")
        defer { removeTree(dir) }
        let log = try HostLogWriter(directory: dir)
        log.nodePrefix = Array("node=web7 ".utf8)
        let router = Router(host: [log])
        Self.run([Self.line(serial: 1, pid: 50), "node=other " + Self.line(serial: 2, pid: 1)], router: router)
        let lines = fileContents(dir + "/audit.log").split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("node=web7 type=SYSCALL"))
        #expect(lines[1].hasPrefix("node=web7 type=CONTAINER_ID"))
        #expect(lines[2].hasPrefix("node=other type=SYSCALL"))
    }

    @Test func configurationSectionsDeclareNamedDestinations() {
        var c = DaemonConfiguration()
        let text = """
            container_logs = yes
            node_name = web7
            [destination central]
            type = remote
            address = 10.0.0.5:60
            queue = 1000
            [destination ship]
            type = json
            path = -
            [destination broken]
            type = remot
            [destination host]
            type = json
            [destination nothing]
            type = json
            qeue = 5
            """
        let errors = c.apply(text, file: "c.conf").map(\.description)
        #expect(c.containerLogs)
        #expect(c.nodeName == .fixed("web7"))
        #expect(c.destinationNames == ["central", "ship", "broken", "nothing"])
        #expect(c.destinations[0].type == .remote && c.destinations[0].address == "10.0.0.5:60" && c.destinations[0].queue == 1000)
        #expect(c.destinations[1].path == "-")
        #expect(errors.contains("c.conf:11: type is one of remote, json, clickhouse, not \"remot\""))
        #expect(errors.contains("c.conf:12: \"host\" is a built-in destination; choose another name"))
        #expect(errors.contains("c.conf:16: unknown key \"qeue\" in [destination nothing]; did you mean \"queue\"?"))
        #expect(errors.contains("c.conf:10: [destination broken] needs type = remote|json|clickhouse"))
        #expect(errors.contains("c.conf:14: [destination nothing] (json) needs path = /abs/file or -"))
        #expect(errors.count == 5)
    }
}

extension DestinationSet {
    func union(_ other: DestinationSet) -> DestinationSet { DestinationSet(bits: bits | other.bits) }
}
