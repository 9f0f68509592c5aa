import ContainerEngine
import Testing

/// The order of the registration checks (SPEC §4): the first failure wins.
@Suite struct CheckLadderTests {
    func orchestratorWithChild() -> TestHost {
        let host = TestHost()
        host.fork(1, 700)
        host.fork(700, 812)
        return host
    }

    @Test func unsetAttemptOnATaskWithChildrenFailsWithEINVALNotEBUSY() {
        let host = orchestratorWithChild()
        host.fork(812, 813)
        #expect(host.set(812, nil, by: host.writer(700)) == .EINVAL)
    }

    @Test func unsetAttemptOnAVanishedTaskFailsWithESRCHFirst() {
        let host = orchestratorWithChild()
        let gone = host.key(812)
        host.exit(812)
        _ = host.bodies()
        #expect(throws: ContainerFailure(.ESRCH, "no process 812 (it exited, or its pid now names another process)")) {
            try host.registry.register(writer: host.writer(700), target: gone, id: nil)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=812 contid=-1 old-contid=-1 pid=700 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=ESRCH"
        ])
    }

    @Test func targetWhosePidWasReusedFailsWithESRCH() {
        let host = orchestratorWithChild()
        let old = host.key(812)
        host.exit(812)
        host.fork(700, 812)
        #expect(throws: ContainerFailure(.ESRCH, "no process 812 (it exited, or its pid now names another process)")) {
            try host.registry.register(writer: host.writer(700), target: old, id: 5)
        }
        #expect(host.registry.chain(of: 812) == .unset)
    }

    @Test func writerWithoutCapabilityFailsWithEPERMBeforeEBUSY() {
        let host = orchestratorWithChild()
        host.fork(812, 813)
        _ = host.bodies()
        #expect(throws: ContainerFailure(.EPERM, "process 700 lacks CAP_AUDIT_CONTROL and has no capcontid")) {
            try host.registry.register(writer: host.writer(700, auditControl: false), target: host.key(812), id: 5)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=812 contid=5 old-contid=-1 pid=700 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EPERM"
        ])
    }

    @Test func selfSetFromAShellThroughTheClientFailsWithEXDEVNotEBUSY() {
        let host = TestHost()
        host.fork(1, 500)  // the shell
        host.fork(500, 501)  // `contid set $$ 7`, acting for its parent
        #expect(throws: ContainerFailure(.EXDEV, "process 500 cannot set its own container ID")) {
            try host.registry.register(writer: host.writer(500, excludingChild: 501), target: host.key(500), id: 7)
        }
        // Without the exclusion the client itself would be the child that makes it EBUSY.
        #expect(host.set(500, 7, by: host.writer(500)) == .EBUSY)
    }

    @Test func backgroundChildOfTheShellIsRegisteredThroughTheClient() {
        let host = TestHost()
        host.fork(1, 500)
        host.fork(500, 510)  // sleep 60 &
        host.fork(500, 501)  // contid set $! 7
        #expect(host.set(510, 7, by: host.writer(500, excludingChild: 501)) == nil)
        #expect(host.registry.chain(of: 510).description == "7")
    }

    /// runc:[2:INIT] has 5-6 threads when the createRuntime hook registers it (SPEC §4):
    /// the ID belongs to the thread group, and every thread's records carry it.
    @Test func targetWithFiveThreadsRegistersAndEveryThreadCarriesTheChain() throws {
        let host = orchestratorWithChild()
        // The connector reports a thread by its tid, under its group (the tgid).
        for tid: Int32 in 813...816 {
            host.registry.apply(.created(parent: 812, child: ProcessKey(pid: tid, start: 0), kind: .thread))
        }
        #expect(host.registry.process(812)?.threads == 5)
        _ = host.bodies()
        #expect(try host.registry.register(writer: host.writer(700), target: host.key(812), id: 5).description == "5")
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=812 contid=5 old-contid=-1 pid=700 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1"
        ])
        // Every thread's records name the group (`pid=` is the tgid): one entry, one chain.
        #expect(host.annotation(812) == "record=1 contid=5")
        #expect(host.registry.processCount == 3)
        #expect(host.registry.container(5)?.members == 1)
        // A thread started later joins too; a thread's exit leaves the group registered.
        host.registry.apply(.created(parent: 812, child: ProcessKey(pid: 817, start: 0), kind: .thread))
        host.registry.apply(.threadExited(process: 812))
        host.registry.apply(.threadExited(process: 812))
        #expect(host.registry.process(812)?.threads == 4)
        #expect(host.annotation(812, record: 2) == "record=2 contid=5")
        // A child forked by any thread is the group's child and inherits.
        host.fork(812, 820)
        #expect(host.registry.chain(of: 820).description == "5")
        // The container lives as long as the group.
        host.exit(820)
        host.exit(812)
        #expect(host.bodies() == ["type=CONTAINER_OP op=drop opid=812 contid=-1 old-contid=5 res=1"])
        #expect(host.registry.container(5) == nil)
    }

    /// A child forked by any of the target's threads is the group's child (the
    /// connector names the forking thread's tgid): threads or not, EBUSY.
    @Test func multiThreadedTargetWithAChildProcessStillFailsWithEBUSY() {
        let host = orchestratorWithChild()
        host.registry.apply(.created(parent: 812, child: ProcessKey(pid: 813, start: 0), kind: .thread))
        host.fork(812, 814)  // forked by thread 813
        #expect(throws: ContainerFailure(.EBUSY, "process 812 has 1 child; register a container's first process before it forks")) {
            try host.registry.register(writer: host.writer(700), target: host.key(812), id: 5)
        }
        #expect(host.registry.chain(of: 812) == .unset)
        host.exit(814)
        #expect(host.set(812, 5, by: host.writer(700)) == nil)
    }

    @Test func threadsOfARegisteredProcessShareItsContainer() {
        let host = orchestratorWithChild()
        host.set(812, 5, by: host.writer(700))
        host.registry.apply(.created(parent: 812, child: ProcessKey(pid: 815, start: 999), kind: .thread))
        host.fork(812, 816)
        #expect(host.registry.process(812)?.threads == 2)
        #expect(host.registry.chain(of: 816).description == "5")
        #expect(host.registry.container(5)?.members == 2)
    }

    @Test func targetThatIsNotADescendantFailsWithEXDEVNamingTheWriter() {
        let host = orchestratorWithChild()
        host.fork(1, 900)
        #expect(throws: ContainerFailure(.EXDEV, "process 812 is not a descendant of the writer, process 900 (runc)")) {
            try host.registry.register(writer: host.writer(900), target: host.key(812), id: 5)
        }
    }

    /// `sleep 60 & out=$(contid set $! 42 2>&1)`: the $(...) subshell runs contid, so the
    /// subshell is the writer and the shell's child is its sibling (SPEC §4).
    @Test func setFromACommandSubstitutionFailsWithEXDEVNamingTheSubshellAndTheFix() {
        let host = TestHost()
        host.fork(1, 800)  // bash
        host.fork(800, 812)  // sleep 60 &
        host.fork(800, 813)  // the $(...) subshell
        host.fork(813, 814)  // contid, acting for its parent
        let subshell = host.writer(813, comm: "bash", exe: "/usr/bin/bash", excludingChild: 814)
        _ = host.bodies()
        #expect(throws: ContainerFailure(.EXDEV, "process 812 is not a descendant of the writer, process 813 (bash); contid acts for the process that runs it, and in $(...) that is a subshell: run contid set directly from the shell that started the target")) {
            try host.registry.register(writer: subshell, target: host.key(812), id: 42)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=812 contid=42 old-contid=-1 pid=813 uid=0 auid=1000 ses=3 comm=\"bash\" exe=\"/usr/bin/bash\" res=0 errno=EXDEV"
        ])
        // From the shell itself it registers.
        #expect(host.set(812, 42, by: host.writer(800, comm: "bash", exe: "/usr/bin/bash", excludingChild: 815)) == nil)
    }

    @Test func writerCommWithControlBytesIsShownWithoutThemInTheEXDEVReason() {
        let host = orchestratorWithChild()
        host.fork(1, 900)
        #expect(throws: ContainerFailure(.EXDEV, "process 812 is not a descendant of the writer, process 900 (x?EBUSY:)")) {
            try host.registry.register(writer: host.writer(900, comm: "x\nEBUSY:"), target: host.key(812), id: 5)
        }
    }

    @Test func orphanReparentedToInitIsNoLongerADescendantOfItsGrandparent() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(700, 812)
        host.exit(700)
        #expect(host.registry.process(812)?.parent == 1)
        #expect(host.set(812, 5, by: host.writer(600)) == .EXDEV)
        #expect(host.set(812, 5, by: host.writer(1)) == nil)
    }

    @Test func reRegisteringByAnUnrelatedOrchestratorFailsWithEEXISTBeforeENOTUNIQ() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(1, 601)
        host.fork(601, 602)
        host.set(602, 9, by: host.writer(601))
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        // 600 owns 5 on 700 and asks for 9, which 601 owns: the EEXIST of check 5 wins.
        #expect(host.set(700, 9, by: host.writer(600)) == .EEXIST)
    }

    @Test func liveIDOwnedByAnotherOrchestratorFailsWithENOTUNIQ() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(1, 601)
        host.fork(601, 701)
        host.set(700, 5, by: host.writer(600))
        _ = host.bodies()
        let other = host.writer(601, comm: "crun", exe: "/usr/bin/crun")
        #expect(throws: ContainerFailure(.ENOTUNIQ, "container ID 5 is in use, owned by another orchestrator (process 600: uid 0, /usr/bin/runc, in no container)")) {
            try host.registry.register(writer: other, target: host.key(701), id: 5)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=701 contid=5 old-contid=-1 pid=601 uid=0 auid=1000 ses=3 comm=\"crun\" exe=\"/usr/bin/crun\" res=0 errno=ENOTUNIQ"
        ])
    }

    @Test func aLaterProcessOfTheSameOrchestratorInjectsAfterTheOwnerExited() {
        // runc run -d: the runc that registered 5 exits; a later runc (runc exec) is the same orchestrator.
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.exit(600)
        host.fork(1, 610)
        host.fork(610, 710)
        #expect(host.set(710, 5, by: host.writer(610)) == nil)
        #expect(host.registry.container(5)?.members == 2)
        #expect(host.registry.chain(of: 710).description == "5")
        // The pid of the first owner reused by the same program: the same orchestrator too.
        host.fork(1, 600)
        host.fork(600, 720)
        #expect(host.set(720, 5, by: host.writer(600)) == nil)
    }

    @Test func anotherUIDExecutableOrOwnChainIsAnotherOrchestrator() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.fork(1, 601)
        host.fork(601, 701)
        var otherUID = host.writer(601)
        otherUID.uid = 1000
        #expect(host.set(701, 5, by: otherUID) == .ENOTUNIQ)
        #expect(host.set(701, 5, by: host.writer(601, exe: "/usr/local/bin/runc")) == .ENOTUNIQ)
        // The same program running inside container 5 is an orchestrator of its own (a nested runtime).
        host.fork(700, 702)
        host.fork(702, 703)
        #expect(host.set(703, 5, by: host.writer(702)) == .ENOTUNIQ)
        host.fork(1, 602)
        host.set(602, 8, by: host.writer(1))
        host.fork(602, 704)
        host.fork(704, 705)
        // 704 runs inside 8: its own chain is 8, the owner's was none.
        #expect(throws: ContainerFailure(.ENOTUNIQ, "container ID 5 is in use, owned by another orchestrator (process 600: uid 0, /usr/bin/runc, in no container)")) {
            try host.registry.register(writer: host.writer(704), target: host.key(705), id: 5)
        }
        #expect(host.registry.container(5)?.members == 3)  // 700, 702 and 703
    }

    @Test func aRequestForANewContainerRefusesALiveIDWhoeverOwnsIt() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(600, 701)
        host.set(700, 5, by: host.writer(600))
        _ = host.bodies()
        #expect(throws: ContainerFailure(.ENOTUNIQ, "container ID 5 is in use (registered by process 600); a new container was asked for, and an ID in use is never joined by such a request")) {
            try host.registry.register(writer: host.writer(600), target: host.key(701), id: 5, new: true)
        }
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=701 contid=5 old-contid=-1 pid=600 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=ENOTUNIQ"
        ])
        #expect(throws: Never.self) { try host.registry.register(writer: host.writer(600), target: host.key(701), id: 6, new: true) }
    }

    @Test func aMemberOfTheTargetsContainerNestsAfterTheOuterRuntimeExited() {
        // runc run -d registers 5 and exits; a runtime started inside the container nests 6 in it.
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.exit(600)
        host.fork(700, 710)  // the inner runtime, a member of 5
        host.fork(710, 720)  // its container's first process, 5 inherited
        _ = host.bodies()
        #expect(host.set(720, 6, by: host.writer(710)) == nil)
        #expect(host.registry.chain(of: 720).description == "6,^5")
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=720 contid=6 old-contid=5 pid=710 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1"
        ])
        #expect(host.registry.container(6)?.owner == host.key(710))
    }

    @Test func anOrchestratorOutsideTheTargetsContainerCannotNestFailingWithEEXIST() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.fork(700, 710)
        host.fork(1, 590)
        host.fork(590, 601)
        host.set(601, 8, by: host.writer(590))
        host.fork(601, 602)
        #expect(throws: ContainerFailure(.EEXIST, "process 710 already has container ID 5, registered by process 600 itself")) {
            try host.registry.register(writer: host.writer(600), target: host.key(710), id: 6)
        }
        #expect(throws: ContainerFailure(.EEXIST, "process 602 already has container ID 8; only a process of that container may nest another in it, and the writer, process 1, is in no container")) {
            try host.registry.register(writer: host.writer(1), target: host.key(602), id: 6)
        }
    }

    @Test func capContIDChecksESRCHThenEXDEVThenEPERM() {
        let host = orchestratorWithChild()
        host.fork(1, 900)
        let noCap = host.writer(700, auditControl: false)
        #expect(throws: ContainerFailure(.EXDEV, "process 700 cannot set its own capcontid")) {
            try host.registry.setCapContID(writer: noCap, target: host.key(700), value: true)
        }
        #expect(throws: ContainerFailure(.EXDEV, "process 900 is not a descendant of the writer, process 700 (runc)")) {
            try host.registry.setCapContID(writer: noCap, target: host.key(900), value: true)
        }
        let viaContid = host.writer(700, auditControl: false, excludingChild: 701)
        #expect(throws: ContainerFailure(.EXDEV, "process 900 is not a descendant of the writer, process 700 (runc); contid acts for the process that runs it, and in $(...) that is a subshell: run contid capcontid directly from the shell that started the target")) {
            try host.registry.setCapContID(writer: viaContid, target: host.key(900), value: true)
        }
        _ = host.bodies()
        #expect(throws: ContainerFailure(.EPERM, "process 700 lacks CAP_AUDIT_CONTROL and has no capcontid")) {
            try host.registry.setCapContID(writer: noCap, target: host.key(812), value: true)
        }
        #expect(host.bodies() == [
            "type=SET_CAPCONTID opid=812 capcontid=1 old-capcontid=0 pid=700 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EPERM"
        ])
        #expect(throws: ContainerFailure(.ESRCH, "no process 999 (it exited, or its pid now names another process)")) {
            try host.registry.setCapContID(writer: noCap, target: ProcessKey(pid: 999, start: 1), value: true)
        }
    }

    @Test func delegatedCapContIDIsPassedOnOnlyByAWriterHoldingIt() throws {
        let host = orchestratorWithChild()
        host.fork(812, 813)
        try host.registry.setCapContID(writer: host.writer(700), target: host.key(812), value: true)
        try host.registry.setCapContID(writer: host.writer(812, auditControl: false), target: host.key(813), value: true)
        _ = host.bodies()
        try host.registry.setCapContID(writer: host.writer(700), target: host.key(812), value: false)
        #expect(host.bodies() == [
            "type=SET_CAPCONTID opid=812 capcontid=0 old-capcontid=1 pid=700 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1"
        ])
        #expect(host.registry.process(812)?.capContID == false)
        #expect(host.registry.process(813)?.capContID == true)
    }

    @Test func unsafeCommIsHexEncodedAsTheKernelDoes() {
        let host = orchestratorWithChild()
        host.set(812, 5, by: host.writer(700, comm: "my runc", exe: "/opt/bin/run\"c"))
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=812 contid=5 old-contid=-1 pid=700 uid=0 auid=1000 ses=3 comm=6D792072756E63 exe=2F6F70742F62696E2F72756E2263 res=1"
        ])
    }

    @Test func topologyFromTheCallerDecidesTheProcessChecks() {
        struct KernelSays: ProcessTopology {
            func startTime(of pid: Int32) -> UInt64? { pid == 812 ? 102 : pid == 700 ? 101 : 1 }
            func parent(of pid: Int32) -> Int32? { pid == 812 ? 700 : 1 }
            func childCount(of pid: Int32) -> Int { pid == 812 ? 3 : 0 }
        }
        let host = orchestratorWithChild()
        #expect(throws: ContainerFailure(.EBUSY, "process 812 has 3 children; register a container's first process before it forks")) {
            try host.registry.register(writer: host.writer(700), target: host.key(812), id: 5, topology: KernelSays())
        }
    }
}
