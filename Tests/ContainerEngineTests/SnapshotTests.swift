import ContainerEngine
import Testing

/// The registry survives a restart of contidd (SPEC §5).
@Suite struct SnapshotTests {
    func nestedHost() -> TestHost {
        let host = TestHost(namespaces: NamespaceSet([.net: 4026531840, .mnt: 4026531841]))
        host.fork(1, 500)
        host.fork(500, 600)
        host.fork(500, 601)
        host.set(600, 1, by: host.writer(500))
        host.set(601, 9, by: host.writer(500))
        host.fork(600, 700)
        host.set(700, 2, by: host.writer(600))
        host.fork(700, 701)
        try? host.registry.setCapContID(writer: host.writer(500), target: host.key(601), value: true)
        _ = host.bodies()
        return host
    }

    @Test func restoreWithEveryProcessAliveGivesTheSameState() throws {
        let host = nestedHost()
        let bytes = host.registry.snapshot()
        let restored = try ContainerRegistry.restore(from: bytes) { _ in true }
        #expect(restored.allProcesses() == host.registry.allProcesses())
        #expect(restored.allContainers() == host.registry.allContainers())
        #expect(restored.networkChains(netns: 4026531840).map(\.description) == ["2,^1", "9", "1"])
        #expect(restored.takeRecords() == [])
        #expect(restored.snapshot() == bytes)
        // The restored registry keeps working: owners may inject, IDs stay unique.
        host.fork(500, 602)
        restored.apply(.created(parent: 500, child: host.key(602)))
        #expect(throws: Never.self) {
            try restored.register(writer: host.writer(500), target: host.key(602), id: 9)
        }
        #expect(restored.chain(of: 602).description == "9")
    }

    @Test func restoreDropsDeadProcessesAndTheObjectsThatLoseTheirLastMember() throws {
        let host = nestedHost()
        let dead: Set<Int32> = [700, 701, 600]
        let restored = try ContainerRegistry.restore(from: host.registry.snapshot()) { !dead.contains($0.pid) }
        #expect(restored.takeRecords().map(\.description) == [
            "type=CONTAINER_OP op=drop opid=701 contid=-1 old-contid=2,^1 res=1",
            "type=CONTAINER_OP op=drop opid=701 contid=-1 old-contid=1 res=1",
        ])
        #expect(restored.diedUnseen == 3)
        #expect(restored.allContainers().map(\.id) == [9])
        #expect(restored.chain(of: 601).description == "9")
        #expect(restored.process(601)?.capContID == true)
        #expect(restored.process(500)?.children == 1)
    }

    /// Written by the build whose namespace inodes were 32-bit: the JSON shape did not
    /// change with 64-bit inodes, so it loads and is written back byte for byte.
    @Test func snapshotOfThe32BitInodeBuildLoadsAndIsWrittenBackUnchanged() throws {
        let bytes = Array(#"{"containers":[{"creation":1,"id":"1","owner":{"pid":500,"start":101},"parent":-1,"slot":0},{"creation":2,"id":"9","owner":{"pid":500,"start":101},"parent":-1,"slot":1}],"namespaceDevice":[0,4],"networks":[{"containers":[1],"netns":4026531840},{"containers":[0],"netns":4026532184}],"nextCreation":3,"processes":[{"capContID":false,"container":-1,"namespaces":{"cgroup":0,"ipc":0,"mnt":4026531841,"net":4026531840,"pid":0,"time":0,"user":0,"uts":0},"parent":0,"parentStart":0,"pid":1,"start":1,"threads":1},{"capContID":false,"container":-1,"namespaces":{"cgroup":0,"ipc":0,"mnt":4026531841,"net":4026531840,"pid":0,"time":0,"user":0,"uts":0},"parent":1,"parentStart":1,"pid":500,"start":101,"threads":1},{"capContID":false,"container":0,"namespaces":{"cgroup":0,"ipc":0,"mnt":4026531841,"net":4026532184,"pid":0,"time":0,"user":0,"uts":0},"parent":500,"parentStart":101,"pid":600,"start":102,"threads":1},{"capContID":false,"container":1,"namespaces":{"cgroup":0,"ipc":0,"mnt":4026531841,"net":4026531840,"pid":0,"time":0,"user":0,"uts":0},"parent":500,"parentStart":101,"pid":601,"start":103,"threads":1}],"version":1}"#.utf8)
        let restored = try ContainerRegistry.restore(from: bytes) { _ in true }
        #expect(restored.snapshot() == bytes)
        #expect(restored.process(600)?.namespaces == NamespaceSet([.net: 4026532184, .mnt: 4026531841]))
        #expect(restored.networkChains(netns: 4026531840).map(\.description) == ["9"])
        #expect(restored.networkChains(netns: 4026532184).map(\.description) == ["1"])
    }

    @Test func snapshotOfAnotherVersionIsRefusedWithTheReason() {
        let bytes = Array(#"{"version":7,"namespaceDevice":[0,4],"nextCreation":1,"containers":[],"processes":[],"networks":[]}"#.utf8)
        #expect(throws: SnapshotError(reason: "version 7, this contidd reads version 1")) {
            _ = try ContainerRegistry.restore(from: bytes) { _ in true }
        }
    }
}
