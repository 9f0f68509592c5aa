import AuditCodec
import ContainerEngine
import LinuxAudit
import TestSupport
import Testing

@testable import ContidDaemon

/// Namespace events as contidd feeds them (SPEC §6): a tracking-rule SYSCALL record
/// of unshare, setns or clone with CLONE_NEW* makes the tracker read the process's
/// /proc/PID/ns/* once; NS_DESTROY waits until the namespace's nsfs handle is stale.
@Suite struct NamespaceTrackingTests {
    /// A kernel whose namespaces live while the test says so: handles in nsfs's
    /// layout (u64 id, u32 type, u32 inode) of the mock's inodes.
    final class FakeProbe: NamespaceProbe {
        let processes: MockProcessSource
        var held: Set<UInt64> = []
        var withHandles = true
        var checked = 0
        private var ids: [UInt64: UInt64] = [:]
        init(_ processes: MockProcessSource) { self.processes = processes }

        /// The mock's inode, read without counting as a /proc read.
        func inode(_ pid: Int32, _ kind: NamespaceKind) -> UInt64? {
            guard let p = processes.table[pid] else { return nil }
            switch kind {
            case .user: return p.userNamespace
            case .pid: return p.pidNamespace
            default: return p.namespaces[kind]
            }
        }

        func identify(pid: Int32, _ kind: NamespaceKind) throws -> (handle: NamespaceHandle?, nsid: UInt64?) {
            guard let inode = inode(pid, kind) else { return (nil, nil) }
            let nsid = ids[inode] ?? UInt64(1000 + ids.count)
            ids[inode] = nsid
            guard withHandles else { return (nil, nsid) }
            var bytes = [UInt8](repeating: 0, count: 16)
            bytes.withUnsafeMutableBytes {
                $0.storeBytes(of: nsid, toByteOffset: 0, as: UInt64.self)
                $0.storeBytes(of: UInt32(truncatingIfNeeded: inode), toByteOffset: 12, as: UInt32.self)
            }
            return (NamespaceHandle(kind: kind, handleType: NamespaceHandle.nsfsHandleType, handle: bytes), nsid)
        }

        func liveness(_ handle: NamespaceHandle) -> NamespaceHandle.Liveness {
            checked += 1
            guard let inode = handle.inode else { return .unknown(.invalidArgument) }
            if held.contains(inode) { return .alive }
            // Alive while a process of the mock is in it.
            let inUse = processes.table.keys.contains { self.inode($0, handle.kind) == inode }
            return inUse ? .alive : .gone
        }
    }

    let registry = ContainerRegistry()
    let events = QueuedProcessEvents()
    let processes = MockProcessSource()
    let clock = ManualTimeSource()
    let tracker: ProcessTracker
    let probe: FakeProbe
    let watch: NamespaceWatch
    static let hostNet: UInt64 = 0xEFFF_FFF9
    static let hostUTS: UInt64 = 0xEFFF_FFFE

    init() throws {
        tracker = ProcessTracker(registry: registry, events: events, processes: processes, clock: clock,
                                 graceMilliseconds: 500)
        probe = FakeProbe(processes)
        watch = NamespaceWatch(registry: registry, probe: probe)
        tracker.namespaceWatch = watch
        for (pid, ppid) in [(Int32(1), Int32(0)), (100, 1), (200, 100)] {
            var p = MockProcessSource.Process(pid: pid, ppid: ppid, startTime: UInt64(pid))
            p.namespaces = [.net: Self.hostNet, .uts: Self.hostUTS]
            processes.add(p)
        }
        tracker.scan()
        try registry.register(writer: Writer(process: ProcessKey(pid: 100, start: 100), hasAuditControl: true, comm: "runc", exe: "/usr/bin/runc"),
                              target: ProcessKey(pid: 200, start: 200), id: 42)
        _ = registry.takeRecords()
    }

    static func facts(_ call: TrackedSyscall, pid: Int32, a0: UInt64, exit: Int64 = 0, success: Bool = true) -> SyscallFacts {
        SyscallFacts(arch: .x86_64, syscall: AuditArch.x86_64.number(of: call), success: success, exit: exit, a0: a0, ppid: 1, pid: pid)
    }

    private func move(_ pid: Int32, _ inodes: [NamespaceKind: UInt64]) {
        for (k, v) in inodes { processes.table[pid]!.namespaces[k] = v }
    }

    @Test func aScanReadsEveryProcessesNamespaces() {
        #expect(registry.process(200)?.namespaces.net == Self.hostNet)
        #expect(registry.process(200)?.namespaces.user == 0xEFFF_FFFD)
        #expect(watch.knownCount == 4)  // net, uts, user, pid of the host, each named once
    }

    @Test func unshareOfNetAndUTSIsOneNSCreateEachUnderTheChain() {
        move(200, [.net: 4026532190, .uts: 4026532191])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4400_0000))
        let bodies = registry.takeRecords().map(\.description)
        #expect(bodies == [
            "type=NS_CREATE op=unshare pid=200 contid=42 ns=net old=\(Self.hostNet) new=4026532190 ns_dev=00:04 nsid=1004",
            "type=NS_CREATE op=unshare pid=200 contid=42 ns=uts old=\(Self.hostUTS) new=4026532191 ns_dev=00:04 nsid=1005",
        ])
        #expect(registry.networkChains(netns: 4026532190).map(\.description) == ["42"])
    }

    @Test func setnsIsNSChangeAndAFailedOrFlaglessCallReadsNothing() {
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.setns, pid: 200, a0: 3, success: false))
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x0000_0200))  // CLONE_FS only
        #expect(processes.namespaceReads == 3)  // the scan's
        #expect(registry.takeRecords().isEmpty)
        tracker.namespaceSyscall(Self.facts(.setns, pid: 200, a0: 3))
        #expect(registry.takeRecords().map(\.description) == [
            "type=NS_CHANGE op=setns pid=200 contid=42 ns=net old=\(Self.hostNet) new=4026532190 ns_dev=00:04 nsid=1004"
        ])
    }

    @Test func cloneWithNewNamespacesReadsTheChildOnlyAndHostTasksCountToo() {
        var child = MockProcessSource.Process(pid: 300, ppid: 1, startTime: 300)
        child.namespaces = [.net: 4026532200, .uts: Self.hostUTS]
        processes.add(child)
        events.fork(parent: 1, child: 300)
        tracker.drain()
        #expect(processes.namespaceReads == 3)  // no read per fork
        tracker.namespaceSyscall(Self.facts(.clone, pid: 1, a0: 0x4000_0011, exit: 300))
        #expect(registry.takeRecords().map(\.description) == [
            "type=NS_CREATE op=clone pid=300 contid=-1 ns=net old=\(Self.hostNet) new=4026532200 ns_dev=00:04 nsid=1004"
        ])
        // A clone without CLONE_NEW* (the rule's a0 mask lets none through) or of a child
        // the table has under another parent reads nothing.
        tracker.namespaceSyscall(Self.facts(.clone, pid: 1, a0: 0x0120_0011, exit: 300))
        tracker.namespaceSyscall(Self.facts(.clone, pid: 100, a0: 0x4000_0011, exit: 300))
        #expect(processes.namespaceReads == 4)
    }

    @Test func unshareOfAPidNamespaceMovesTheChildrenAndTheirForksAreRead() {
        processes.table[200]!.pidForChildren = 4026532300
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x2000_0000))
        #expect(registry.takeRecords().map(\.description) == [
            "type=NS_CREATE op=unshare pid=200 contid=42 ns=pid old=\(0xEFFF_FFFC as UInt64) new=4026532300 ns_dev=00:04"
        ])
        var child = MockProcessSource.Process(pid: 201, ppid: 200, startTime: 201)
        child.pidNamespace = 4026532300
        processes.add(child)
        events.fork(parent: 200, child: 201)
        tracker.drain()
        #expect(registry.process(201)?.namespaces.pid == 4026532300)
    }

    @Test func aNamespaceOutlivingItsLastTaskIsDestroyedOnlyWhenItsHandleIsStale() throws {
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4000_0000))
        _ = registry.takeRecords()
        probe.held = [4026532190]  // a bind mount (ip netns add) holds it
        processes.remove(200)
        events.exit(200)
        tracker.drain()
        tracker.applyAllExits()
        _ = registry.takeRecords()  // the drop
        #expect(!watch.check())
        #expect(!watch.check())
        #expect(registry.takeRecords().isEmpty)
        #expect(watch.candidateCount == 1)
        probe.held = []  // ip netns del
        #expect(watch.check())
        #expect(registry.takeRecords().map(\.description) == [
            "type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04 nsid=1004"
        ])
        #expect(watch.candidateCount == 0)
        #expect(watch.unconfirmed == 0)
        // The check's cost is the candidates: nothing left, nothing opened.
        let before = probe.checked
        #expect(!watch.check())
        #expect(probe.checked == before)
    }

    @Test func withoutHandlesAnUnusedNamespaceIsReportedAndCountedUnconfirmed() throws {
        probe.withHandles = false
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4000_0000))
        _ = registry.takeRecords()
        processes.remove(200)
        events.exit(200)
        tracker.drain()
        tracker.applyAllExits()
        _ = registry.takeRecords()
        #expect(watch.check())
        #expect(registry.takeRecords().map(\.description) == ["type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04 nsid=1004"])
        #expect(watch.unconfirmed == 1)
    }

    @Test func aCandidateInUseAgainIsNotReported() {
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4000_0000))
        move(200, [.net: Self.hostNet])
        tracker.namespaceSyscall(Self.facts(.setns, pid: 200, a0: 3))
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.setns, pid: 200, a0: 3))
        _ = registry.takeRecords()
        #expect(!watch.check())
        #expect(registry.takeRecords().isEmpty)
    }

    @Test func aNamespaceGoneAtItsLastUsersExitIsReportedOnceWithoutWaitingForTheHeldExit() {
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4000_0000))
        _ = registry.takeRecords()
        processes.remove(200)
        events.exit(200)
        tracker.drain()  // the EXIT is held for the grace period
        #expect(watch.check())
        #expect(registry.takeRecords().map(\.description) == ["type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04 nsid=1004"])
        tracker.applyAllExits()
        _ = registry.takeRecords()  // the drop
        #expect(!watch.check())
        #expect(registry.takeRecords().isEmpty)
        #expect(watch.destroyed == 1)
    }

    @Test func aLongLivedCandidateIsProbedEveryFourthCheck() {
        move(200, [.net: 4026532190])
        tracker.namespaceSyscall(Self.facts(.unshare, pid: 200, a0: 0x4000_0000))
        probe.held = [4026532190]
        processes.remove(200)
        events.exit(200)
        tracker.drain()
        tracker.applyAllExits()
        _ = registry.takeRecords()
        let start = probe.checked
        for _ in 0..<4 { watch.check() }
        #expect(probe.checked - start == 4)
        for _ in 0..<8 { watch.check() }
        #expect(probe.checked - start == 6)
        probe.held = []
        for _ in 0..<4 { watch.check() }
        #expect(registry.takeRecords().map(\.description) == ["type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04 nsid=1004"])
    }
}
