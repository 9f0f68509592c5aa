import AuditCodec
import Foundation
import Glibc
import LinuxAudit
import Testing

/// A nested orchestrator (SPEC §4, §9): a system container started detached by the
/// host's runc (which then exits) runs the host's runc itself, and that runc's hook
/// registers its container as nested in the outer one. The inner runc lives in the
/// outer container's pid namespace: the pid in its state is not the host's, and the
/// pidfd the hook passes names the right process anyway.
@Suite(.serialized)
struct RuntimeNestedTests {
    @Test func aRuncInsideADetachedRegisteredContainerRegistersANestedContainerWithChildParentChain() throws {
        try withDaemon(rules: { RuntimeRuncTests.rules($0, ["N"]) }) { daemon, _ in
            let runc = Runc(under: daemon.root)
            defer { runc.cleanUp() }
            let root = daemon.root
            let outerID = "0a0a0a0a-0000-4000-8000-\(randomHex(12))", innerID = "1b1b1b1b-0000-4000-8000-\(randomHex(12))"
            let innerRID = "contid-inner-\(randomHex(6))", outerRID = "contid-outer-\(randomHex(6))"
            _ = try RuntimeRuncTests.bundle(daemon, "N", annotations: ["org.contid.id": innerID])
            try makeFifo(root + "/nest-go")
            try makeFifo(root + "/nest-done")
            let script = """
                read go < \(root)/nest-go
                /usr/sbin/runc --root \(root)/inner-state run --bundle \(root)/bundleN \(innerRID) > \(root)/inner.out 2>&1
                echo $? > \(root)/inner.rc
                read done < \(root)/nest-done
                """
            let outer = try systemContainerBundle(at: root + "/outer", args: ["/bin/sh", "-c", script],
                                                  annotations: ["org.contid.id": outerID], shared: [root],
                                                  hooks: try hookConfig(daemon, runtime: "runc"))
            try runc.start(outerRID, bundle: outer, detached: true)
            #expect(try runc.wait(outerRID) == 0, "\(runc.outputText(outerRID))")  // the outer runc has exited
            let outerPID = try #require(try runc.state(outerRID)?.pid, "\(runc.outputText(outerRID))")
            #expect(try daemon.request(.get(pid: outerPID)).last == .ok(outerID))

            try release(root + "/nest-go")
            let nested = { (records: [AuditRecord]) in records.first { $0["contid"] == innerID } }
            let registered = try daemon.waitForLog { _ in nested((try? RuntimeRuncTests.registrations(daemon)) ?? []) != nil }
            #expect(registered, "\(String(decoding: (try? readAll(root + "/inner.out")) ?? [], as: UTF8.self))")
            let set = try #require(nested(try RuntimeRuncTests.registrations(daemon)))
            let innerInit = try #require(set["opid"].flatMap { Int32($0) })
            #expect(set["old-contid"] == outerID, "\(set.body)")
            #expect(set.exe == realPath("/usr/sbin/runc"))
            #expect(try daemon.request(.get(pid: innerInit)).last == .ok("\(innerID),^\(outerID)"))

            try release(root + "/dataN/go")
            #expect(waitUntil(within: .seconds(30)) { access(root + "/inner.rc", F_OK) == 0 && ((try? readAll(root + "/inner.rc"))?.count ?? 0) > 0 })
            #expect(String(decoding: try readAll(root + "/inner.rc"), as: UTF8.self) == "0\n",
                    "\(String(decoding: (try? readAll(root + "/inner.out")) ?? [], as: UTF8.self))")
            let writes = { (events: [LoggedEvent]) in events.filter { $0.key == "oci-N" && $0.pid != getpid() } }
            #expect(try daemon.waitForLog { writes($0).contains { $0.paths.contains("/data/gc-N.out") } })
            let events = try daemon.events()
            #expect(writes(events).count >= 4)
            #expect(writes(events).allSatisfy { $0.chain == "\(innerID),^\(outerID)" }, "\(writes(events).map(\.lines))")
            // The pidfd named the right process: the registered pid (the host's) is the one that wrote first.
            #expect(writes(events).first { $0.paths.contains("/data/sh-N.out") }?.pid == innerInit)
            try release(root + "/nest-done")
        }
    }
}
