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

    @Test func snapshotOfAnotherVersionIsRefusedWithTheReason() {
        let bytes = Array(#"{"version":7,"namespaceDevice":[0,4],"nextCreation":1,"containers":[],"processes":[],"networks":[]}"#.utf8)
        #expect(throws: SnapshotError(reason: "version 7, this contidd reads version 1")) {
            _ = try ContainerRegistry.restore(from: bytes) { _ in true }
        }
    }
}
