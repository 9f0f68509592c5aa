import AuditCodec
import AuditPipeline
import ContainerEngine
import LinuxAudit
import TestSupport
import Testing

@testable import ContidDaemon

/// The live path without a kernel: record lines in, host log out, with the registry,
/// tracker and rules of a running contidd.
@Suite struct LiveEventPathTests {
    let dir = makeTemporaryDirectory("live")
    let clock = ManualTimeSource(wall: 1_796_000_010_000)
    let registry = ContainerRegistry()
    let processes = MockProcessSource()
    let events = QueuedProcessEvents()
    let tracker: ProcessTracker
    let log: HostLogWriter
    let ledger: OwnRecordLedger
    let path: LiveEventPath

    init() throws {
        tracker = ProcessTracker(registry: registry, events: events, processes: processes, clock: clock, graceMilliseconds: 500)
        log = try HostLogWriter(directory: dir)
        let log = self.log
        ledger = OwnRecordLedger(clock: clock, submitter: nil, submitThroughKernel: false) { try? log.write($0) }
        path = LiveEventPath(registry: registry, tracker: tracker, ledger: ledger, log: log, router: Router(host: [log]), clock: clock,
                             graceMilliseconds: 500, ownPID: 4242)
        processes.add(.init(pid: 1, ppid: 0, startTime: 1))
        processes.add(.init(pid: 100, ppid: 1, startTime: 10))
        processes.add(.init(pid: 101, ppid: 1, startTime: 11))
        tracker.scan()
        try registry.register(writer: Writer(process: ProcessKey(pid: 1, start: 1), hasAuditControl: true, comm: "init", exe: "/sbin/init"),
                              target: ProcessKey(pid: 100, start: 10), id: 7)
        _ = registry.takeRecords()
    }

    private func syscall(_ serial: Int, pid: Int, key: String) -> String {
        "type=SYSCALL msg=audit(1796000010.000:\(serial)): arch=c000003e syscall=257 success=yes exit=3 a0=ffffff9c a1=7ffd a2=0 a3=0 items=1 ppid=1 pid=\(pid) auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"cat\" exe=\"/usr/bin/cat\" key=\"\(key)\""
    }

    private func run(_ lines: [String]) -> String {
        let batch = RecordBatch()
        for l in lines { Array(l.utf8).withUnsafeBytes { batch.appendLine($0) } }
        path.process(batch)
        path.finish()
        path.flush()
        return fileContents(dir + "/audit.log")
    }

    @Test func eventsOfAContainerGetTheirChainAndOthersDoNot() throws {
        defer { removeTree(dir) }
        let text = run([syscall(1, pid: 100, key: "etc"), syscall(2, pid: 101, key: "etc")])
        #expect(text == """
            \(syscall(1, pid: 100, key: "etc")) record=1
            type=CONTAINER_ID msg=audit(1796000010.000:1): record=1 contid=7
            \(syscall(2, pid: 101, key: "etc"))

            """)
        #expect(path.counters == .init(eventsSeen: 2, trackingEvents: 0, eventsFiltered: 0, writeErrors: 0))
    }

    @Test func ruleFilterKeepsOnlyTheEventsOfItsContainer() throws {
        defer { removeTree(dir) }
        let (lines, errors) = RuleParser.parse("-a always,exit -F arch=b64 -S openat -F contid=7 -k etc\n", file: "t.rules")
        #expect(errors.isEmpty)
        for l in lines { if case let .add(rule, _) = l.command { path.ruleFilter.add(rule) } }
        let text = run([syscall(1, pid: 100, key: "etc"), syscall(2, pid: 101, key: "etc")])
        #expect(text == """
            \(syscall(1, pid: 100, key: "etc")) record=1
            type=CONTAINER_ID msg=audit(1796000010.000:1): record=1 contid=7

            """)
        #expect(path.counters.eventsFiltered == 1)
    }

    @Test func trackingEventsFeedStateAndAreNotWritten() throws {
        defer { removeTree(dir) }
        // pid 300 was never seen: its record's ppid= places it under 100.
        let text = run([syscall(1, pid: 300, key: AuditRule.trackingKey).replacingOccurrences(of: "ppid=1 ", with: "ppid=100 ")])
        #expect(text == "")
        #expect(path.counters.trackingEvents == 1)
        #expect(registry.chain(of: 300).description == "7")
        #expect(tracker.discoveredFromRecords == 1)
    }

    @Test func streamClockMovesOnLocalRecordsOnlyAndNotIntoTheFuture() throws {
        defer { removeTree(dir) }
        _ = run([syscall(1, pid: 101, key: "a")])
        #expect(path.streamMs == 1_796_000_010_000)
        // A record 2 s ahead of the local clock (grace 500 ms + 1 s) does not move it.
        _ = run([syscall(2, pid: 101, key: "a").replacingOccurrences(of: "1796000010.000", with: "1796000012.000")])
        #expect(path.streamMs == 1_796_000_010_000)
        _ = run(["node=other " + syscall(3, pid: 101, key: "a").replacingOccurrences(of: "1796000010.000", with: "1796000011.000")])
        #expect(path.streamMs == 1_796_000_010_000)
    }
}
