import ContainerEngine
import LinuxAudit
import TestSupport
import Testing

@testable import ContidDaemon

/// Joining by namespaces (SPEC §4) as the tracker sees it: a FORK whose child is in a
/// container's own pid namespace (its parent entered it with setns) joins the child;
/// pid namespaces are read only while some container has one.
@Suite struct JoinTrackingTests {
    let registry = ContainerRegistry()
    let events = QueuedProcessEvents()
    let processes = MockProcessSource()
    let clock = ManualTimeSource()
    let tracker: ProcessTracker
    static let containerNS: UInt64 = 4_026_532_500
    static let hostNS: UInt64 = 0xEFFF_FFFC

    init() throws {
        tracker = ProcessTracker(registry: registry, events: events, processes: processes, clock: clock,
                                 graceMilliseconds: 500)
        processes.add(.init(pid: 1, ppid: 0, startTime: 1))
        processes.add(.init(pid: 100, ppid: 1, startTime: 10))  // the container's pid 1
        processes.add(.init(pid: 300, ppid: 1, startTime: 30))  // the operator's nsenter
        tracker.scan()
    }

    private func registerContainer(ownNamespace: Bool) throws {
        try registry.register(writer: Writer(process: ProcessKey(pid: 1, start: 1), hasAuditControl: true, comm: "init", exe: "/sbin/init"),
                              target: ProcessKey(pid: 100, start: 10), id: 7)
        if ownNamespace { #expect(registry.setOwnPIDNamespace(Self.containerNS, of: 7)) }
        _ = registry.takeRecords()
    }

    private func fork(_ child: Int32, of parent: Int32, start: UInt64, namespace: UInt64, auid: UInt32 = 4321, comm: String = "nsenter") {
        var p = MockProcessSource.Process(pid: child, ppid: parent, startTime: start)
        p.pidNamespace = namespace
        p.auid = auid
        p.comm = comm
        p.exe = "/usr/bin/nsenter"
        processes.add(p)
        events.fork(parent: parent, child: child)
    }

    @Test func aChildBornInTheContainersPidNamespaceJoinsIt() throws {
        try registerContainer(ownNamespace: true)
        fork(301, of: 300, start: 31, namespace: Self.containerNS)
        tracker.drain()
        #expect(registry.chain(of: 301).description == "7")
        #expect(registry.takeRecords().map(\.description) == [
            "type=CONTAINER_OP op=join opid=301 contid=7 old-contid=-1 pid=301 uid=0 auid=4321 ses=4294967295 comm=\"nsenter\" exe=\"/usr/bin/nsenter\" res=1"
        ])
        #expect(tracker.joins == 1)
        // Its own children inherit the container: no second join.
        fork(302, of: 301, start: 32, namespace: Self.containerNS)
        tracker.drain()
        #expect(registry.chain(of: 302).description == "7")
        #expect(registry.takeRecords().isEmpty)
        #expect(registry.container(7)?.members == 3)
    }

    @Test func theNextContainersFirstProcessInTheReusedNamespaceInodeDoesNotJoinTheLastOne() throws {
        try registerContainer(ownNamespace: true)
        // The container's pid 1 exits; its exit is held (late records may still come)...
        events.exit(100)
        processes.remove(100)
        tracker.drain()
        #expect(registry.process(100) != nil, "the exit is held, not applied yet")
        // ...and the kernel gives the same inode to the next runtime's new pid namespace at once.
        fork(400, of: 300, start: 40, namespace: Self.containerNS, comm: "runc:[2:INIT]")
        tracker.drain()
        #expect(registry.chain(of: 400).description == "-1")
        #expect(registry.takeRecords().isEmpty)
        #expect(tracker.joins == 0)
    }

    @Test func aChildGoneBeforeItsForkWasReadJoinsByItsParentsPidForChildren() throws {
        try registerContainer(ownNamespace: true)
        var nsenter = processes.table[300]!
        nsenter.pidForChildren = Self.containerNS
        nsenter.auid = 1000
        processes.add(nsenter)
        fork(303, of: 300, start: 33, namespace: Self.containerNS)
        processes.remove(303)
        tracker.drain()
        #expect(registry.chain(of: 303).description == "7")
        let records = registry.takeRecords().map(\.description)
        #expect(records.count == 1)
        #expect(records.first?.hasPrefix("type=CONTAINER_OP op=join opid=303 contid=7 old-contid=-1 pid=303 uid=0 auid=1000 ") == true)
    }

    @Test func membersForkingInTheirOwnNamespaceDoNotJoinAgain() throws {
        try registerContainer(ownNamespace: true)
        fork(101, of: 100, start: 11, namespace: Self.containerNS)
        tracker.drain()
        #expect(registry.chain(of: 101).description == "7")
        #expect(registry.takeRecords().isEmpty)
        #expect(tracker.joins == 0)
    }

    @Test func withoutAContainerOfItsOwnPidNamespaceForksReadNoNamespace() throws {
        try registerContainer(ownNamespace: false)
        fork(304, of: 300, start: 34, namespace: Self.containerNS)
        fork(102, of: 100, start: 12, namespace: Self.hostNS)
        tracker.drain()
        #expect(processes.pidNamespaceReads == 0)
        #expect(registry.chain(of: 304) == .unset)
    }

    @Test func theNamespaceStopsCountingWhenItsPid1Exits() throws {
        try registerContainer(ownNamespace: true)
        fork(305, of: 100, start: 35, namespace: Self.containerNS)  // keeps 7 alive after pid 1
        tracker.drain()
        #expect(registry.hasOwnPIDNamespaces)
        registry.apply(.exited(ProcessKey(pid: 100, start: 10)))
        #expect(!registry.hasOwnPIDNamespaces)
        #expect(registry.container(7) != nil)
        fork(306, of: 300, start: 36, namespace: Self.containerNS)  // an inode reused by another namespace
        tracker.drain()
        #expect(registry.chain(of: 306) == .unset)
    }

    @Test func aProcessFoundByARescanInTheContainersNamespaceJoinsIt() throws {
        try registerContainer(ownNamespace: true)
        // Its FORK was lost (a connector overflow): the /proc scan finds it.
        var p = MockProcessSource.Process(pid: 307, ppid: 300, startTime: 37)
        p.pidNamespace = Self.containerNS
        processes.add(p)
        tracker.scan()
        #expect(registry.chain(of: 307).description == "7")
        #expect(registry.takeRecords().map(\.description).first?.hasPrefix("type=CONTAINER_OP op=join opid=307 contid=7 ") == true)
    }
}
