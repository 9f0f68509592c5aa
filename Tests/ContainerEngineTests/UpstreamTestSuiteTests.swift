import ContainerEngine
import Testing

/// The kernel proposal's test suite (upstream §11.1) and cover-letter scripts
/// (§11.2), step by step, with the errno and the exact record of each attempt.
@Suite struct UpstreamTestSuiteTests {
    /// init(1) -> perl test script (8724) -> `sleep 2` (8730).
    func scriptWithChild() -> TestHost {
        let host = TestHost()
        host.fork(1, 8724)
        host.fork(8724, 8730)
        return host
    }

    @Test func step1SelfSetFailsWithEXDEVAndStillWritesTheOpRecord() {
        let host = scriptWithChild()
        let selfWriter = host.writer(8730, comm: "bash", exe: "/usr/bin/bash")
        #expect(host.set(8730, 123456, by: selfWriter) == .EXDEV)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=123456 old-contid=-1 pid=8730 uid=0 auid=1000 ses=3 comm=\"bash\" exe=\"/usr/bin/bash\" res=0 errno=EXDEV"
        ])
        #expect(host.registry.chain(of: 8730) == .unset)
    }

    @Test func step2SetOnAChildSucceeds() {
        let host = scriptWithChild()
        #expect(host.set(8730, 123456, by: host.writer(8724, comm: "perl", exe: "/usr/bin/perl")) == nil)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=123456 old-contid=-1 pid=8724 uid=0 auid=1000 ses=3 comm=\"perl\" exe=\"/usr/bin/perl\" res=1"
        ])
        #expect(host.registry.chain(of: 8730).description == "123456")
        #expect(host.annotation(8730) == "record=1 contid=123456")
        #expect(host.registry.container(123456)?.owner == host.key(8724))
    }

    @Test func step3SameValueAgainFailsWithEEXIST() {
        let host = scriptWithChild()
        host.set(8730, 123456, by: host.writer(8724))
        _ = host.bodies()
        #expect(host.set(8730, 123456, by: host.writer(8724)) == .EEXIST)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=123456 old-contid=123456 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EEXIST"
        ])
    }

    @Test func step4WritingTheUnsetValueFailsWithEINVAL() throws {
        let host = scriptWithChild()
        host.set(8730, 123456, by: host.writer(8724))
        _ = host.bodies()
        let requested = try ContainerID.parseRequest("18446744073709551615\n")
        #expect(requested == nil)
        #expect(host.set(8730, requested, by: host.writer(8724)) == .EINVAL)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=-1 old-contid=123456 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EINVAL"
        ])
        #expect(host.registry.chain(of: 8730).description == "123456")
    }

    @Test func step5DifferentValueFromTheSameOrchestratorFailsWithEEXIST() {
        let host = scriptWithChild()
        host.set(8730, 123456, by: host.writer(8724))
        _ = host.bodies()
        #expect(host.set(8730, 123457, by: host.writer(8724)) == .EEXIST)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=123457 old-contid=123456 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EEXIST"
        ])
    }

    @Test func step6InjectionIntoAFreshChildSucceeds() {
        let host = scriptWithChild()
        host.set(8730, 123456, by: host.writer(8724))
        host.fork(8724, 8731)
        _ = host.bodies()
        #expect(host.set(8731, 123456, by: host.writer(8724)) == nil)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8731 contid=123456 old-contid=-1 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1"
        ])
        #expect(host.registry.container(123456)?.members == 2)
        #expect(host.registry.containerCount == 1)
    }

    @Test func step7TargetWithAChildFailsWithEBUSY() throws {
        let host = scriptWithChild()
        host.fork(8724, 8740)
        host.fork(8740, 8741)
        _ = host.bodies()
        #expect(throws: ContainerFailure(.EBUSY, "process 8740 has 1 child; register a container's first process before it forks")) {
            try host.registry.register(writer: host.writer(8724), target: host.key(8740), id: 123458)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8740 contid=123458 old-contid=-1 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EBUSY"
        ])
    }

    @Test func step8EveryAttemptOfSteps1To7HasExactlyOneOpRecord() throws {
        let host = scriptWithChild()
        let script = host.writer(8724)
        host.set(8730, 123456, by: host.writer(8730))  // 1
        host.set(8730, 123456, by: script)  // 2
        host.set(8730, 123456, by: script)  // 3
        host.set(8730, nil, by: script)  // 4
        host.set(8730, 123457, by: script)  // 5
        host.fork(8724, 8731)
        host.set(8731, 123456, by: script)  // 6
        host.fork(8724, 8740)
        host.fork(8740, 8741)
        host.set(8740, 123458, by: script)  // 7
        let ops = host.registry.takeRecords().filter { $0.type == .containerOp }
        #expect(ops.map { $0.body.split(separator: " ").prefix(3).joined(separator: " ") } == [
            "op=set opid=8730 contid=123456",
            "op=set opid=8730 contid=123456",
            "op=set opid=8730 contid=123456",
            "op=set opid=8730 contid=-1",
            "op=set opid=8730 contid=123457",
            "op=set opid=8731 contid=123456",
            "op=set opid=8740 contid=123458",
        ])
        #expect(ops.map { $0.body.split(separator: " ").last! } == [
            "errno=EXDEV", "res=1", "errno=EEXIST", "errno=EINVAL", "errno=EEXIST", "res=1", "errno=EBUSY",
        ])
    }

    /// Step 9: the script sets contidsig on tasksig; tasksig nests contidsigc and
    /// contidsigc2 on its two children; a signal event names each target's chain.
    @Test func step9NestingByTheRegisteredTaskSucceedsAndTargetsCarryTheirChains() {
        let host = scriptWithChild()
        let script = host.writer(8724, comm: "perl", exe: "/usr/bin/perl")
        host.fork(8724, 9000)  // tasksig
        host.fork(8724, 9100)  // tasksigk
        #expect(host.set(9000, 111, by: script) == nil)
        #expect(host.set(9100, 999, by: script) == nil)
        host.fork(9000, 9001)
        host.fork(9000, 9002)
        _ = host.bodies()
        let tasksig = host.writer(9000, comm: "sleep", exe: "/usr/bin/sleep")
        #expect(host.set(9001, 222, by: tasksig) == nil)
        #expect(host.set(9002, 333, by: tasksig) == nil)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=9001 contid=222 old-contid=111 pid=9000 uid=0 auid=1000 ses=3 comm=\"sleep\" exe=\"/usr/bin/sleep\" res=1",
            "type=CONTAINER_OP op=set opid=9002 contid=333 old-contid=111 pid=9000 uid=0 auid=1000 ses=3 comm=\"sleep\" exe=\"/usr/bin/sleep\" res=1",
        ])
        // kill -TERM -<pgid> by tasksigk: SYSCALL record=1, one OBJ_PID per target.
        #expect(host.annotation(9100, record: 1) == "record=1 contid=999")
        #expect(host.annotation(9000, record: 2) == "record=2 contid=111")
        #expect(host.annotation(9001, record: 3) == "record=3 contid=222,^111")
        #expect(host.annotation(9002, record: 4) == "record=4 contid=333,^111")
        #expect(host.registry.container(222)?.owner == host.key(9000))
    }

    /// Step 12: capcontid delegated to a child in a user namespace lets it set
    /// IDs on its own children without CAP_AUDIT_CONTROL (the upstream §5 recommendation).
    @Test func step12CapContIDLetsADescendantWithoutCapAuditControlRegisterItsChild() throws {
        let host = scriptWithChild()
        let script = host.writer(8724, comm: "perl", exe: "/usr/bin/perl")
        host.registry.apply(.namespacesChanged(pid: 8730, operation: .unshare, namespaces: NamespaceSet([.user: 4026532300])))
        _ = host.bodies()
        try host.registry.setCapContID(writer: script, target: host.key(8730), value: true)
        #expect(host.bodies() == [
            "type=SET_CAPCONTID opid=8730 capcontid=1 old-capcontid=0 pid=8724 uid=0 auid=1000 ses=3 comm=\"perl\" exe=\"/usr/bin/perl\" res=1"
        ])
        host.fork(8730, 8750)
        let delegated = host.writer(8730, auditControl: false, comm: "bash", exe: "/usr/bin/bash")
        #expect(host.set(8750, 4242, by: delegated) == nil)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8750 contid=4242 old-contid=-1 pid=8730 uid=0 auid=1000 ses=3 comm=\"bash\" exe=\"/usr/bin/bash\" res=1",
            "type=NS_INFO opid=8750 contid=4242 ns_dev=00:04 user=4026532300",
        ])
        // Not inherited: the grandchild may not set IDs on its own child.
        host.fork(8750, 8760)
        let grandchild = host.writer(8750, auditControl: false, comm: "sh", exe: "/bin/sh")
        #expect(host.registry.process(8750)?.capContID == false)
        #expect(host.set(8760, 4343, by: grandchild) == .EPERM)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8760 contid=4343 old-contid=4242 pid=8750 uid=0 auid=1000 ses=3 comm=\"sh\" exe=\"/bin/sh\" res=0 errno=EPERM"
        ])
    }

    /// Upstream §4 (K-v10-10): 1 spawns 2 and 3; 2 spawns 4.
    @Test func nestingExampleOneSpawnsTwoAndThreeTwoSpawnsFour() {
        let host = TestHost()
        host.fork(1, 500)  // O, the host orchestrator (unset)
        host.fork(500, 600)  // A
        #expect(host.set(600, 1, by: host.writer(500)) == nil)
        host.fork(600, 700)  // B
        host.fork(600, 701)  // C
        let a = host.writer(600)
        #expect(host.set(700, 2, by: a) == nil)
        #expect(host.set(701, 3, by: a) == nil)
        host.fork(700, 800)  // D
        let b = host.writer(700)
        #expect(host.set(800, 4, by: b) == nil)
        _ = host.bodies()
        #expect(host.registry.chain(of: 800).description == "4,^2,^1")
        #expect(host.registry.chain(of: 701).description == "3,^1")
        #expect(host.annotation(800) == "record=1 contid=4,^2,^1")
        // O is not a member of 3,^1 (upstream: does not descend from A, the owner of 3): EEXIST.
        #expect(throws: ContainerFailure(.EEXIST, "process 701 already has container ID 3,^1; only a process of that container may nest another in it, and the writer, process 500, is in no container")) {
            try host.registry.register(writer: host.writer(500), target: host.key(701), id: 5)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=701 contid=5 old-contid=3,^1 pid=500 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EEXIST"
        ])
        // IDs stay unique under nesting.
        host.fork(800, 801)
        #expect(host.set(801, 3, by: host.writer(800)) == .ENOTUNIQ)
    }

    /// Upstream §11.2: two tasks in one netns get 123451 then 123452; a packet there names both, newest first.
    @Test func netnsPacketNamesEveryContainerNewestFirst() {
        let hostNet: UInt64 = 4026531992
        let host = TestHost(namespaces: NamespaceSet([.net: hostNet, .mnt: 4026531841]))
        host.fork(1, 8724)
        host.fork(8724, 8730)
        host.fork(8724, 8731)
        #expect(host.registry.networkChainBytes(netns: hostNet) == nil)
        host.set(8730, 123451, by: host.writer(8724))
        host.set(8731, 123452, by: host.writer(8724))
        var out: [UInt8] = []
        #expect(host.registry.appendNetworkAnnotation(record: 1, netns: hostNet, to: &out))
        #expect(String(decoding: out, as: UTF8.self) == "record=1 contid=123452,123451")
        host.exit(8731)
        #expect(host.registry.networkChainBytes(netns: hostNet).map { String(decoding: $0, as: UTF8.self) } == "123451")
    }

    @Test func netnsPacketJoinsNestedChainsWithCommas() {
        let net: UInt64 = 4026532184
        let host = TestHost(namespaces: NamespaceSet([.net: net]))
        host.fork(1, 500)
        host.fork(500, 600)
        host.set(600, 1, by: host.writer(500))
        host.fork(600, 700)
        host.fork(600, 701)
        host.set(701, 3, by: host.writer(600))
        host.set(700, 2, by: host.writer(600))
        host.exit(600)
        #expect(host.registry.networkChainBytes(netns: net).map { String(decoding: $0, as: UTF8.self) } == "2,^1,3,^1")
    }
}
