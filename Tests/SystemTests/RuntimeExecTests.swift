import AuditCodec
import Foundation
import Glibc
import LinuxAudit
import Testing

/// `runc exec` and `podman exec` run no hook and start a child of the runtime, not
/// of the container: the exec'd process joins the container it enters (SPEC §4,
/// "Joining by namespaces"), its writes and its children's carry the container's
/// chain, and the trail's op=join names the operator's auid.
@Suite(.serialized)
struct RuntimeExecTests {
    /// What the operator runs inside the container: a write, and a child that writes.
    static func execScript(_ name: String) -> String {
        "echo exec > /data/exec-\(name).out; sh -c 'echo child > /data/execchild-\(name).out'"
    }

    static func joins(_ daemon: DaemonHarness) throws -> [AuditRecord] {
        try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["op"] == "join" }
    }

    /// The exec's two writes, once both are in the log; checks their chain and the join.
    static func expectExecJoined(_ daemon: DaemonHarness, name: String, id: String, auid: String) throws {
        let writes = { (events: [LoggedEvent]) in
            events.filter { $0.key == "oci-\(name)" && $0.paths.contains { $0.hasPrefix("/data/exec") } }
        }
        #expect(try daemon.waitForLog { writes($0).count >= 2 }, "\(daemon.stderrText)")
        let events = writes(try daemon.events())
        #expect(events.allSatisfy { $0.chain == id }, "\(events.map(\.lines))")
        #expect(events.allSatisfy { $0.syscall?["auid"] == auid }, "\(events.map(\.lines))")
        #expect(try daemon.waitForLog { _ in ((try? Self.joins(daemon)) ?? []).contains { $0["contid"] == id } })
        let join = try #require(try Self.joins(daemon).first { $0["contid"] == id })
        #expect(join["auid"] == auid && join["res"] == "1", "\(join.body)")
        // The process that joined is the one that made the exec's first write.
        let writer = events.first { $0.paths.contains("/data/exec-\(name).out") }?.pid
        #expect(join["opid"] == writer.map { "\($0)" }, "\(join.body) \(events.map(\.lines))")
    }

    @Test func runcExecIntoARegisteredContainerJoinsItWithTheOperatorsAuid() throws {
        try withDaemon(rules: { RuntimeRuncTests.rules($0, ["X"]) }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let id = "e8e8e8e8-0000-4000-8000-\(randomHex(12))", rid = "contid-exec-\(randomHex(6))"
            try runc.start(rid, bundle: try RuntimeRuncTests.bundle(daemon, "X", annotations: ["org.contid.id": id]))
            #expect(try daemon.waitForLog { _ in ((try? RuntimeRuncTests.registrations(daemon)) ?? []).count == 1 }, "\(runc.outputText(rid))")
            let exec = try runClean(["/bin/sh", "-c",
                "echo 4321 > /proc/self/loginuid && exec /usr/sbin/runc --root \(runc.root) exec \(rid) sh -c \"\(Self.execScript("X"))\""])
            #expect(exec.status == 0, "\(exec.output)")
            try Self.expectExecJoined(daemon, name: "X", id: id, auid: "4321")
            try release("\(daemon.root)/dataX/go")
            #expect(try runc.wait(rid) == 0, "\(runc.outputText(rid))")
        }
    }

    @Test func podmanExecIntoARegisteredContainerJoinsItWithTheOperatorsAuid() throws {
        try withDaemon(rules: { RuntimeRuncTests.rules($0, ["Y"]) }) { daemon, _ in
            let hooks = try RuntimePodmanTests.hooksDir(daemon)
            let bundle = try RuntimeRuncTests.bundle(daemon, "Y", hook: false)
            let cidFile = daemon.root + "/podman-exec.cid"
            defer { RuntimePodmanTests.remove([cidFile]) }
            let id = "f9f9f9f9-0000-4000-8000-\(randomHex(12))"
            let run = try runClean(RuntimePodmanTests.global(hooks) + ["run", "-d", "--cidfile", cidFile] + RuntimePodmanTests.runOptions + [
                "--annotation", "org.contid.id=\(id)", "-v", "\(daemon.root)/dataY:/data", "--rootfs", bundle.rootfs,
                "sh", "-c", RuntimeRuncTests.script, "sh", "Y",
            ], within: .seconds(120))
            #expect(run.status == 0, "\(run.output)")
            let cid = String(decoding: try readAll(cidFile), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(try daemon.waitForLog { _ in ((try? RuntimeRuncTests.registrations(daemon)) ?? []).count == 1 })
            let global = RuntimePodmanTests.global(hooks).dropFirst().joined(separator: " ")
            let exec = try runClean(["/bin/sh", "-c",
                "echo 4322 > /proc/self/loginuid && exec \(RuntimePodmanTests.podman) \(global) exec \(cid) sh -c \"\(Self.execScript("Y"))\""],
                within: .seconds(120))
            #expect(exec.status == 0, "\(exec.output)")
            try Self.expectExecJoined(daemon, name: "Y", id: id, auid: "4322")
            try release("\(daemon.root)/dataY/go")
            let waited = try runClean([RuntimePodmanTests.podman, "wait", cid], within: .seconds(60))
            #expect(waited.output.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(waited.output)")
        }
    }
}
