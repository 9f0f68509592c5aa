import ContainerEngine
import Testing

/// Inheritance, exits, drops and PID reuse (SPEC §5, upstream §6).
@Suite struct LifetimeTests {
    @Test func childrenInheritAtCreationAndExecChangesNothing() {
        let host = TestHost()
        host.fork(1, 700)
        host.fork(700, 812)
        host.set(812, 123456, by: host.writer(700))
        let child = host.fork(812, 813)
        host.registry.apply(.executed(child))
        host.fork(813, 814)
        #expect(host.registry.chain(of: 814).description == "123456")
        #expect(host.registry.container(123456)?.members == 3)
        #expect(host.registry.chain(of: 700) == .unset)
        #expect(host.annotation(700) == nil)
    }

    @Test func lastMemberExitDropsTheObjectWithADropRecord() {
        let host = TestHost()
        host.fork(1, 700)
        host.fork(700, 8730)
        host.set(8730, 123456, by: host.writer(700))
        host.fork(8730, 8731)
        _ = host.bodies()
        host.exit(8730)
        #expect(host.bodies() == [])
        host.exit(8731)
        #expect(host.bodies() == ["type=CONTAINER_OP op=drop opid=8731 contid=-1 old-contid=123456 res=1"])
        #expect(host.registry.containerCount == 0)
    }

    @Test func parentContainerLivesWhileANestedContainerHasMembersThenBothDrop() {
        let host = TestHost()
        host.fork(1, 500)
        host.fork(500, 600)
        host.set(600, 1, by: host.writer(500))
        host.fork(600, 700)
        host.set(700, 2, by: host.writer(600))
        _ = host.bodies()
        host.exit(600)
        #expect(host.bodies() == [])
        #expect(host.registry.container(1)?.members == 0)
        #expect(host.registry.container(1)?.nested == 1)
        host.exit(700)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=drop opid=700 contid=-1 old-contid=2,^1 res=1",
            "type=CONTAINER_OP op=drop opid=700 contid=-1 old-contid=1 res=1",
        ])
    }

    @Test func aWriterOutsideTheContainerCannotReSetItEvenDescendingFromItsOwner() {
        // The proposal let W (unset, a descendant of the owner O) re-set T; SPEC §4 nests
        // only from inside the target's container, so the old object is never nested away.
        let host = TestHost()
        host.fork(1, 500)  // O
        host.fork(500, 600)  // W, unset, descends from O
        host.fork(600, 700)  // T
        host.set(700, 1, by: host.writer(500))
        _ = host.bodies()
        #expect(host.set(700, 2, by: host.writer(600)) == .EEXIST)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=700 contid=2 old-contid=1 pid=600 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=0 errno=EEXIST"
        ])
        #expect(host.registry.chain(of: 700).description == "1")
    }

    @Test func orphanReparentedToInitCannotBeReRegisteredByItsOldOrchestratorOrByInit() {
        let host = TestHost()
        host.fork(1, 500)
        host.fork(500, 600)
        host.set(600, 1, by: host.writer(500))
        host.fork(600, 700)
        host.exit(600)
        #expect(host.set(700, 3, by: host.writer(500)) == .EXDEV)
        #expect(host.set(700, 3, by: host.writer(1)) == .EEXIST)
    }

    @Test func droppedIDMayBeRegisteredAgainByAnyoneWithANewOwner() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.exit(700)
        host.fork(1, 601)
        host.fork(601, 701)
        #expect(host.set(701, 5, by: host.writer(601)) == nil)
        #expect(host.registry.container(5)?.owner == host.key(601))
    }

    @Test func pidReuseAfterAnUnseenExitDropsTheOldProcessAndNeverMovesItsID() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 8730)
        host.set(8730, 5, by: host.writer(600))
        _ = host.bodies()
        // The exit of 8730 was lost; an unrelated process now has pid 8730.
        host.registry.apply(.created(parent: 1, child: ProcessKey(pid: 8730, start: 5000)))
        #expect(host.registry.diedUnseen == 1)
        #expect(host.registry.chain(of: 8730) == .unset)
        #expect(host.bodies() == ["type=CONTAINER_OP op=drop opid=8730 contid=-1 old-contid=5 res=1"])
        #expect(host.registry.process(600)?.children == 0)
    }

    @Test func exitOfAnEarlierProcessWithTheSamePidRemovesTheStaleEntry() {
        let host = TestHost()
        host.fork(1, 600)
        host.registry.apply(.exited(ProcessKey(pid: 600, start: 7)))
        #expect(host.registry.process(600) == nil)
        #expect(host.registry.diedUnseen == 1)
    }

    @Test func lateDiscoveredProcessTakesItsParentsContainerAsItIsNow() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        host.registry.apply(.discovered(ProcessKey(pid: 900, start: 4000), parent: 700, threads: 3))
        #expect(host.registry.chain(of: 900).description == "5")
        #expect(host.registry.process(900)?.threads == 3)
        #expect(host.registry.process(700)?.children == 1)
        // Seen again with the same identity: nothing changes.
        host.registry.apply(.discovered(ProcessKey(pid: 900, start: 4000), parent: 1))
        #expect(host.registry.process(900)?.parent == 700)
    }
}

/// Namespace records (SPEC §6) and the netns membership behind packet annotations.
@Suite struct NamespaceTests {
    static let hostSet = NamespaceSet([
        .cgroup: 4026531835, .ipc: 4026531839, .mnt: 4026531841, .net: 4026531840, .pid: 4026531836,
        .time: 4026531834, .user: 4026531837, .uts: 4026531838,
    ])

    @Test func registrationWritesNSInfoWithTheTargetsNamespaces() {
        let host = TestHost(namespaces: Self.hostSet)
        host.fork(1, 8724)
        var containerSet = Self.hostSet
        containerSet.ipc = 4026532181
        containerSet.mnt = 4026532179
        containerSet.net = 4026532184
        containerSet.pid = 4026532182
        containerSet.uts = 4026532180
        host.fork(8724, 8730, cloneFlags: [.newIPC, .newNS, .newNet, .newPID, .newUTS], namespaces: containerSet)
        _ = host.bodies()
        host.set(8730, 123456, by: host.writer(8724))
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=8730 contid=123456 old-contid=-1 pid=8724 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1",
            "type=NS_INFO opid=8730 contid=123456 ns_dev=00:04 cgroup=4026531835 ipc=4026532181 mnt=4026532179 net=4026532184 pid=4026532182 time=4026531834 user=4026531837 uts=4026532180",
        ])
    }

    @Test func cloneWithNewNamespacesWritesNSCreatePerNamespace() {
        let host = TestHost(namespaces: Self.hostSet)
        host.fork(1, 8724)
        host.fork(8724, 8730, cloneFlags: [.newNet, .newUTS], namespaces: NamespaceSet([.net: 4026532184, .uts: 4026532180]))
        #expect(host.bodies() == [
            "type=NS_CREATE op=clone pid=8730 contid=-1 ns=net old=4026531840 new=4026532184 ns_dev=00:04",
            "type=NS_CREATE op=clone pid=8730 contid=-1 ns=uts old=4026531838 new=4026532180 ns_dev=00:04",
        ])
        #expect(host.registry.process(8730)?.namespaces.mnt == 4026531841)
    }

    @Test func unshareCreatesSetnsChangesAndTheLastUserLeavingDestroys() {
        let host = TestHost(namespaces: NamespaceSet([.net: 4026532184]))
        host.fork(1, 8724)
        host.fork(8724, 8741)
        host.set(8741, 123456, by: host.writer(8724))
        _ = host.bodies()
        host.registry.apply(.namespacesChanged(pid: 8741, operation: .unshare, namespaces: NamespaceSet([.net: 4026532190])))
        #expect(host.bodies() == [
            "type=NS_CREATE op=unshare pid=8741 contid=123456 ns=net old=4026532184 new=4026532190 ns_dev=00:04"
        ])
        #expect(host.registry.networkChains(netns: 4026532190) == [ContainerChain([123456])])
        #expect(host.registry.networkChains(netns: 4026532184) == [])
        host.registry.apply(.namespacesChanged(pid: 8741, operation: .setns, namespaces: NamespaceSet([.net: 4026532184])))
        #expect(host.bodies() == [
            "type=NS_CHANGE op=setns pid=8741 contid=123456 ns=net old=4026532190 new=4026532184 ns_dev=00:04",
            "type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04",
        ])
        #expect(host.registry.networkChains(netns: 4026532184) == [ContainerChain([123456])])
    }

    @Test func exitOfTheLastTaskInANamespaceDestroysItAfterTheDrop() {
        let host = TestHost(namespaces: NamespaceSet([.net: 4026531840]))
        host.fork(1, 8724)
        host.fork(8724, 8730, cloneFlags: .newNet, namespaces: NamespaceSet([.net: 4026532184]))
        host.set(8730, 7, by: host.writer(8724))
        _ = host.bodies()
        host.exit(8730)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=drop opid=8730 contid=-1 old-contid=7 res=1",
            "type=NS_DESTROY ns=net ino=4026532184 ns_dev=00:04",
        ])
        #expect(host.registry.networkChainBytes(netns: 4026532184) == nil)
    }

    @Test func containerRejoiningANetnsBecomesNewestAgainOnlyAfterLeavingIt() {
        let net: UInt64 = 4026531840
        let host = TestHost(namespaces: NamespaceSet([.net: net]))
        host.fork(1, 500)
        host.fork(500, 601)
        host.fork(500, 602)
        host.set(601, 1, by: host.writer(500))
        host.set(602, 2, by: host.writer(500))
        host.fork(601, 611)  // a second task of 1 in the same netns: order unchanged
        #expect(host.registry.networkChains(netns: net).map(\.description) == ["2", "1"])
        host.registry.apply(.namespacesChanged(pid: 601, operation: .setns, namespaces: NamespaceSet([.net: 99])))
        host.registry.apply(.namespacesChanged(pid: 611, operation: .setns, namespaces: NamespaceSet([.net: 99])))
        host.registry.apply(.namespacesChanged(pid: 611, operation: .setns, namespaces: NamespaceSet([.net: net])))
        #expect(host.registry.networkChains(netns: net).map(\.description) == ["1", "2"])
    }

    @Test func withConfirmedDestructionAnUnusedNamespaceIsACandidateNotARecord() {
        let host = TestHost(namespaces: NamespaceSet([.net: 4026531840]))
        host.registry.confirmsNamespaceDestruction = true
        host.registry.namespaceIdentifier = { kind, inode in kind == .net && inode == 4026532190 ? 77 : nil }
        host.fork(1, 8724)
        host.fork(8724, 8741)
        host.registry.apply(.namespacesChanged(pid: 8741, operation: .unshare, namespaces: NamespaceSet([.net: 4026532190])))
        #expect(host.bodies() == [
            "type=NS_CREATE op=unshare pid=8741 contid=-1 ns=net old=4026531840 new=4026532190 ns_dev=00:04 nsid=77"
        ])
        host.exit(8741)
        #expect(host.bodies() == [])
        let unused = host.registry.takeUnusedNamespaces()
        #expect(unused.count == 1 && unused[0].kind == .net && unused[0].inode == 4026532190)
        #expect(!host.registry.isNamespaceInUse(.net, inode: 4026532190))
        #expect(host.registry.isNamespaceInUse(.net, inode: 4026531840))
        host.registry.namespaceDestroyed(.net, inode: 4026532190)
        #expect(host.bodies() == ["type=NS_DESTROY ns=net ino=4026532190 ns_dev=00:04 nsid=77"])
    }

    @Test func learnedNamespacesWriteNoRecord() {
        let host = TestHost(namespaces: NamespaceSet([.net: 4026531840]))
        host.fork(1, 8724)
        host.registry.learnNamespaces(pid: 8724, NamespaceSet([.net: 4026532190, .uts: 4026532191]))
        #expect(host.registry.process(8724)?.namespaces.net == 4026532190)
        #expect(host.registry.process(8724)?.namespaces.uts == 4026532191)
        #expect(host.bodies() == [])
    }
}
