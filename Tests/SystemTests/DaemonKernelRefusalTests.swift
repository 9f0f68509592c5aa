import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

// Requests the kernel refuses, made by contidd as built for use (the system tests run
// the release build). Before 268e802 every refusal crashed a release contidd: the
// netlink receive buffer, a stack-promoted class instance, was over-retained on the
// throwing path. The debug test binary never showed it.

extension DaemonTests {
    /// kill -9 of contidd, then every rule deleted behind its back (`auditctl -D`, as an
    /// admin or `augenrules --load` would): the next contidd on the same state directory
    /// undoes the previous rules, each refused by the kernel (AUDIT_DEL_RULE: ENOENT),
    /// and runs: the registry is kept, the rules are loaded again, and the stop puts the
    /// kernel back as the first contidd found it.
    @Test func restartAfterKillMinus9AndAuditctlDeleteAllKeepsTheRegistry() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.restartKey)\n" }) { daemon, control in
            let r = daemon.root
            try makeFifo(r + "/go")
            let pid = try spawnRedirected(["/usr/bin/busybox", "sh", "-c", "read x < \(r)/go; : >> \(r)/w/file"],
                                          output: r + "/container.out")
            var reaped = false
            defer { if !reaped { kill(pid, SIGKILL); _ = try? waitChild(pid) } }
            #expect(try daemon.request(.set(pid: pid, id: "7401", forParent: false)) == [.ok("7401")])
            let loaded = try control.listRules()
            let exclusion = { (pid: pid_t) in AuditRule.selfExclusion(pid: pid, executable: realPath(daemon.contidd)) }
            #expect(loaded.first == exclusion(daemon.pid))
            try daemon.killHard()
            let state = String(decoding: try readAll(daemon.stateDir + "/kernel.state"), as: UTF8.self)
            let added = state.split(separator: "\n").filter { $0.hasPrefix("added ") }.count
            #expect(added == loaded.count, "kernel.state: \(state)")
            #expect(try control.listRules() == loaded, "a killed contidd cannot remove its rules")

            let deleteAll = try runCapturing(["/usr/sbin/auditctl", "-D"])
            #expect(deleteAll.status == 0, "\(deleteAll.output)")
            #expect(try control.listRules().isEmpty)

            try daemon.start()
            #expect(daemon.stderrText.contains("\(daemon.stateDir)/kernel.state: a previous contidd did not stop cleanly; undoing its \(added) rules\n"),
                    "\(daemon.stderrText)")
            // Loaded again, in the same places; the self-exclusion names the new pid.
            #expect(try control.listRules() == [exclusion(daemon.pid)] + loaded.dropFirst())
            #expect(try daemon.shell("$CONTID get \(pid)") == "7401\n")
            // Attribution goes on: the registered process writes after the restart.
            try release(r + "/go")
            #expect(try waitChild(pid) == 0)
            reaped = true
            #expect(try daemon.waitForLog { $0.contains { $0.key == Self.restartKey } })
            let writes = try daemon.events().filter { $0.key == Self.restartKey }
            #expect(writes.map(\.pid) == [pid])
            #expect(writes.map(\.chain) == ["7401"])
        }
    }

    /// `auditctl -D` while contidd runs: contidd puts its own rules back (the self-exclusion
    /// at the head, the tracking rules after it: deleting their stale copies is refused
    /// with ENOENT) and runs on; the user's rule stays deleted, as the admin wanted.
    @Test func auditctlDeleteAllWhileRunningPutsContiddsOwnRulesBack() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, control in
            let own = [AuditRule.selfExclusion(pid: daemon.pid, executable: realPath(daemon.contidd))]
                + AuditRule.namespaceTracking()  // contidd's default tracking_rules
            #expect(try control.listRules().filter { $0.key != Self.key } == own)
            let deleteAll = try runCapturing(["/usr/sbin/auditctl", "-D"])
            #expect(deleteAll.status == 0, "\(deleteAll.output)")
            let restored = try waitUntil { try control.listRules() == own }
            let rules = try control.listRules()
            #expect(restored, "rules: \(rules)")
            #expect(try daemon.status()["own_rules_restored"] == 1)
            #expect(daemon.stderrText.contains("contidd's self-exclusion rule was deleted; added again\n"), "\(daemon.stderrText)")
        }
    }

    /// The same rule twice in the rules directory: the kernel refuses the second copy
    /// (AUDIT_ADD_RULE: EEXIST); contidd says so, leaves the rule as it is, and runs.
    @Test func aRuleTheKernelHasAlreadyIsLeftAsItIsAndContiddRuns() throws {
        try withDaemon(rules: { String(repeating: "-w \($0)/w -p wa -k \(Self.key)\n", count: 2) }) { daemon, control in
            #expect(daemon.stderrText.contains("\(daemon.rulesDir)/10-test.rules:2: the kernel has this rule already; left as it is\n"),
                    "\(daemon.stderrText)")
            #expect(!daemon.stderrText.contains("10-test.rules:1:"), "\(daemon.stderrText)")
            #expect(try control.listRules().filter { $0.key == Self.key }.count == 1)
            try Self.registerAndWrite(daemon, id: "7402")
        }
    }
}
