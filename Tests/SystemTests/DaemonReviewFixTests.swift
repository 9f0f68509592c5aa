import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

// System tests for the review's fixes: thread-group leader exits, rules appended
// after contidd's, a second contidd on the same state directory.

extension DaemonTests {
    static let leaderKey = "contid-leader"

    /// The main thread calls pthread_exit while another thread runs (the kernel sends
    /// EXIT with pid == tgid): the process lives on in its container. The other
    /// thread writes after 3 s (longer than the 2 s grace, so an exit wrongly held
    /// would have been applied) and its write carries the container's chain, with no
    /// drop record before it.
    @Test func leaderThreadExitDoesNotEndTheProcess() throws {
        guard access("/usr/bin/python3", X_OK) == 0 else {
            throw SystemTestPrecondition(description: "python3 is not installed")
        }
        try withDaemon(rules: { "-w \($0)/w/file -p wa -k \(Self.leaderKey)\n" }) { daemon, _ in
            let r = daemon.root
            try makeFifo(r + "/leader")
            try write("""
                import ctypes, os, sys, threading, time
                open(sys.argv[1]).read()
                def later():
                    time.sleep(3)
                    with open(sys.argv[2], "a") as f: f.write("x\\n")
                    os._exit(0)
                threading.Thread(target=later).start()
                ctypes.CDLL(None).pthread_exit(None)

                """, to: r + "/leader.py")
            let pid = try spawnRedirected(["/usr/bin/python3", r + "/leader.py", r + "/leader", r + "/w/file"],
                                          output: r + "/leader.out")
            #expect(try daemon.request(.set(pid: pid, id: "7301", forParent: false)) == [.ok("7301")])
            try release(r + "/leader")
            #expect(try waitChild(pid) == 0)
            #expect(try daemon.waitForLog { $0.contains { $0.key == Self.leaderKey } })
            let events = try daemon.events()
            let index = try #require(events.firstIndex { $0.key == Self.leaderKey })
            #expect(events[index].pid == pid)
            #expect(events[index].chain == "7301")
            let drops = events[..<index].flatMap(\.records).filter { $0.type == .containerOp && $0["op"] == "drop" }
            #expect(drops.isEmpty, "dropped before the write: \(drops.map(\.line))")
            // The process's real end drops the container afterwards.
            #expect(try daemon.waitForLog(within: .seconds(10)) { events in
                events.flatMap(\.records).contains { $0.type == .containerOp && $0["op"] == "drop" && $0["old-contid"] == "7301" }
            })
        }
    }

    /// A rule appended with auditctl after contidd started lands after the tracking
    /// rules; contidd moves its rules back to the end, so the rule's events keep
    /// their own key (the kernel reports the first matching rule's key).
    @Test func ruleAppendedLaterKeepsItsKey() throws {
        try withDaemon(rules: { _ in "" }) { daemon, control in
            let added = try runCapturing(["/usr/sbin/auditctl", "-a", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "later-exec"])
            #expect(added.status == 0, "\(added.output)")
            defer { _ = try? runCapturing(["/usr/sbin/auditctl", "-d", "always,exit", "-F", "arch=b64", "-S", "execve", "-k", "later-exec"]) }
            // contidd checks its rules' places periodically: wait until the tracking rules are
            // the last exit rules again, all of them, after the one appended.
            let tracking = AuditRule.namespaceTracking()  // contidd's default tracking_rules
            func trackingLast() throws -> Bool {
                let exitRules = try control.listRules().filter { $0.list == .exit }
                return Array(exitRules.suffix(tracking.count)) == tracking && exitRules.contains { $0.key == "later-exec" }
            }
            let moved = try waitUntil(trackingLast)
            let exitRules = try control.listRules().filter { $0.list == .exit }
            #expect(moved, "tracking rules not last: \(exitRules)")
            #expect(try daemon.status()["tracking_rule_moves"] == 1)

            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                busybox sh -c 'read x < $D/go; exec /bin/true' & c=$!
                echo "c=$c"
                $CONTID set $c 7302; echo "rc=$?"
                echo go > $D/go
                wait
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            let child = try #require(v["c"].flatMap { Int32($0) })
            // The child's first execve (busybox, before the registration) and its exec of /bin/true.
            let isTrue = { (e: LoggedEvent) in e.key == "later-exec" && e.pid == child && e.records.contains { $0.type == .execve && $0.line.contains("a0=\"/bin/true\"") } }
            let found = try daemon.waitForLog { $0.contains(where: isTrue) }
            let mine = try daemon.events().filter { $0.pid == child }.map { $0.records.map(\.line) }
            #expect(found, "no execve of /bin/true by \(child) keyed later-exec: \(mine)")
            #expect(try daemon.events().first(where: isTrue)?.chain == "7302")
        }
    }

    /// A second contidd on the same state directory stops at once with a clear error,
    /// before it touches kernel.state, the snapshot or the socket; the first goes on.
    @Test func secondDaemonOnTheSameStateDirectoryIsRefused() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, control in
            let rulesBefore = try control.listRules()
            let second = try runClean([daemon.contidd, "--source", "netlink", "--config", "/dev/null", "--log-dir", daemon.logDir,
                                       "--run-dir", daemon.runDir, "--state-dir", daemon.stateDir, "--rules-dir", daemon.rulesDir])
            #expect(second.status != 0)
            #expect(second.output.contains("another contidd (pid \(daemon.pid)) is running with state directory \(daemon.stateDir)"),
                    "\(second.output)")
            #expect(try control.listRules() == rulesBefore)
            #expect(try control.status().pid == UInt32(daemon.pid))
            #expect(access(daemon.stateDir + "/kernel.state", F_OK) == 0)
            try Self.registerAndWrite(daemon, id: "7303")
        }
    }
}
