import AuditCodec
import ContainerEngine
import Foundation
import Testing

/// Labels (SPEC §6, §9): kept with the container, recorded in CONTAINER_INFO,
/// surviving a restart, read back from a trail.
@Suite struct ContainerLabelTests {
    static func labels(_ pairs: [(String, String)]) -> ContainerLabels { try! ContainerLabels(validating: pairs) }

    @Test func aNewContainerWithLabelsWritesOneContainerInfoAfterItsOp() throws {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        let l = Self.labels([("team", "payments"), ("runtime", "runc"), ("name", "web-1"), ("bundle", "/run/b 1"), ("pod", "prod/web-7d9"),
                             ("id", "4f2a"), ("image", "registry/app:1.2"), ("tier", "front")])
        try host.registry.register(writer: host.writer(600), target: host.key(700), id: 123456, labels: l)
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=set opid=700 contid=123456 old-contid=-1 pid=600 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1",
            "type=CONTAINER_INFO opid=700 contid=123456 runtime=\"runc\" id=\"4f2a\" name=\"web-1\" image=\"registry/app:1.2\" pod=\"prod/web-7d9\" labels=7465616D3D7061796D656E74732C62756E646C653D2F72756E2F6220312C746965723D66726F6E74",
        ])
        #expect(host.registry.labels(of: 123456) == l)
        #expect(host.registry.container(123456)?.labels.encoded
                == "runtime=runc,id=4f2a,name=web-1,image=registry/app:1.2,pod=prod/web-7d9,team=payments,bundle=/run/b 1,tier=front")
    }

    @Test func withoutLabelsNoContainerInfoIsWritten() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.set(700, 5, by: host.writer(600))
        #expect(host.bodies().filter { $0.hasPrefix("type=CONTAINER_INFO") }.isEmpty)
    }

    @Test func anInjectionKeepsTheContainersLabelsAndWritesNoInfo() throws {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(600, 701)
        try host.registry.register(writer: host.writer(600), target: host.key(700), id: 5, labels: Self.labels([("name", "a")]))
        _ = host.bodies()
        try host.registry.register(writer: host.writer(600), target: host.key(701), id: 5, labels: Self.labels([("name", "b")]))
        #expect(host.bodies().count == 1)
        #expect(host.registry.labels(of: 5)["name"] == "a")
    }

    @Test func containerInfoReadsBackQuotedAndHexFields() throws {
        let l = Self.labels([("runtime", "runc"), ("name", "web \"1\""), ("team", "pay")])
        let record = ContainerInfo(opid: 700, id: 9, labels: l).record
        #expect(record.body == "opid=700 contid=9 runtime=\"runc\" name=77656220223122 labels=\"team=pay\"")
        let back = try ContainerInfo.parse(body: Array(record.body.utf8))
        #expect(back == ContainerInfo(opid: 700, id: 9, labels: l))
        // A value with a single quote is hex-encoded too: the record travels inside msg='...'.
        #expect(ContainerInfo(opid: 1, id: 2, labels: Self.labels([("name", "it's")])).record.body == "opid=1 contid=2 name=69742773")
    }

    @Test func containerInfoThatDoesNotReadSaysWhy() {
        func reason(_ body: String) -> String? {
            do { _ = try ContainerInfo.parse(body: Array(body.utf8)); return nil } catch { return error.reason }
        }
        #expect(reason("contid=5 name=\"a\"") == "no opid field")
        #expect(reason("opid=5 name=\"a\"") == "no contid field")
        #expect(reason("opid=5 contid=x") != nil)
        #expect(reason("opid=5 contid=5 name=zz") == "name=zz is neither quoted nor hex")
        #expect(reason("opid=5 contid=5 labels=\"a\"") == "label \"a\" is not key=value")
        #expect(reason("opid=5 contid=5 future=\"x\" name=\"a\"") == nil)
    }

    @Test func recordedLabelsApplyToTheLiveContainer() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.registry.applyRecordedRegistration(writer: 600, target: 700, id: 5, uid: 0, exe: Array("/usr/bin/runc".utf8))
        #expect(host.registry.applyRecordedLabels(id: 5, labels: Self.labels([("name", "x")])))
        #expect(host.registry.labels(of: 5)["name"] == "x")
        #expect(!host.registry.applyRecordedLabels(id: 6, labels: Self.labels([("name", "x")])))
        // The recorded orchestrator injects, as it would have live.
        host.fork(1, 610)
        host.fork(610, 710)
        #expect(host.set(710, 5, by: host.writer(610)) == nil)
    }

    @Test func aRestartKeepsOwnersAndLabels() throws {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        try host.registry.register(writer: host.writer(600), target: host.key(700), id: 5,
                                   labels: Self.labels([("name", "web"), ("x", "y z")]))
        host.exit(600)
        let restored = try ContainerRegistry.restore(from: host.registry.snapshot()) { _ in true }
        #expect(restored.labels(of: 5) == host.registry.labels(of: 5))
        #expect(restored.containerInfoRecords().map(\.description) == [
            "type=CONTAINER_INFO opid=700 contid=5 name=\"web\" labels=783D79207A"
        ])
        // The same orchestrator, started after the restart, injects; another program does not.
        restored.apply(.discovered(ProcessKey(pid: 610, start: 900), parent: 1, namespaces: nil))
        restored.apply(.created(parent: 610, child: ProcessKey(pid: 710, start: 901)))
        restored.apply(.created(parent: 610, child: ProcessKey(pid: 711, start: 902)))
        let runc = Writer(process: ProcessKey(pid: 610, start: 900), hasAuditControl: true, comm: "runc", exe: "/usr/bin/runc")
        #expect(throws: Never.self) { try restored.register(writer: runc, target: ProcessKey(pid: 710, start: 901), id: 5) }
        var crun = runc
        crun.exe = Array("/usr/bin/crun".utf8)
        #expect(throws: ContainerFailure.self) { try restored.register(writer: crun, target: ProcessKey(pid: 711, start: 902), id: 5) }
    }

    @Test func aSnapshotWithoutOrchestratorsStillLoadsAndOnlyTheOwnerProcessInjects() throws {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(600, 701)
        host.set(700, 5, by: host.writer(600))
        var text = String(decoding: host.registry.snapshot(), as: UTF8.self)
        text = text.replacingOccurrences(of: ",\"orchestratorExe\":\"2F7573722F62696E2F72756E63\",\"orchestratorUID\":0", with: "")
        #expect(!text.contains("orchestrator"))
        let restored = try ContainerRegistry.restore(from: Array(text.utf8)) { _ in true }
        #expect(throws: Never.self) {
            try restored.register(writer: host.writer(600), target: host.key(701), id: 5)
        }
    }
}

/// Joining by namespaces in the engine (SPEC §4): the own pid namespace of a container
/// whose first process is its pid 1, and what a restart keeps of it.
@Suite struct PIDNamespaceJoinTests {
    static let ns: UInt64 = 4_026_532_600
    static let joiner = Writer(process: ProcessKey(pid: 0, start: 0), hasAuditControl: false, uid: 0, auid: 1000, ses: 3,
                               comm: "sh", exe: "/bin/sh")

    static func joiner(_ key: ProcessKey) -> Writer {
        var w = joiner
        w.process = key
        return w
    }

    @Test func aProcessOfAnotherContainerEnteringLeavesItForTheOneItEntered() {
        let host = TestHost()
        host.fork(1, 600)
        host.fork(600, 700)
        host.fork(1, 800)
        host.set(700, 5, by: host.writer(600))
        host.set(800, 9, by: host.writer(1))
        #expect(host.registry.setOwnPIDNamespace(Self.ns, of: 5))
        host.fork(800, 801)
        _ = host.bodies()
        #expect(host.registry.joinIfEntered(host.key(801), pidNamespace: Self.ns, joiner: Self.joiner(host.key(801)))?.description == "5")
        #expect(host.bodies() == [
            "type=CONTAINER_OP op=join opid=801 contid=5 old-contid=9 pid=801 uid=0 auid=1000 ses=3 comm=\"sh\" exe=\"/bin/sh\" res=1"
        ])
        #expect(host.registry.container(9)?.members == 1)
        // Another namespace, or one no container has: nothing.
        #expect(host.registry.joinIfEntered(host.key(801), pidNamespace: Self.ns + 1, joiner: Self.joiner(host.key(801))) == nil)
        // A nested container of 5 is in 5 already.
        host.fork(700, 702)
        host.fork(702, 703)
        host.set(703, 6, by: host.writer(702))
        _ = host.bodies()
        #expect(host.registry.joinIfEntered(host.key(703), pidNamespace: Self.ns, joiner: Self.joiner(host.key(703))) == nil)
        #expect(host.bodies().isEmpty)
    }

    @Test func aNamespaceIsOneContainersOnly() {
        let host = TestHost()
        host.fork(1, 700)
        host.fork(1, 701)
        host.set(700, 5, by: host.writer(1))
        host.set(701, 6, by: host.writer(1))
        #expect(host.registry.setOwnPIDNamespace(Self.ns, of: 5))
        #expect(!host.registry.setOwnPIDNamespace(Self.ns, of: 6))
        #expect(host.registry.container(ownPIDNamespace: Self.ns) == 5)
    }

    @Test func aRestartKeepsTheNamespaceWhileItsPid1Lives() throws {
        let host = TestHost()
        host.fork(1, 700)
        host.set(700, 5, by: host.writer(1))
        host.registry.setOwnPIDNamespace(Self.ns, of: 5)
        let bytes = host.registry.snapshot()
        let restored = try ContainerRegistry.restore(from: bytes) { _ in true }
        #expect(restored.container(ownPIDNamespace: Self.ns) == 5)
        let gone = try ContainerRegistry.restore(from: bytes) { $0.pid != 700 }
        #expect(!gone.hasOwnPIDNamespaces)
    }
}
