import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

extension DaemonTests {
    /// A container created by a capcontid orchestrator cannot use that orchestrator's
    /// delegation by acting for it (exec'ing contid makes the orchestrator its parent).
    @Test func aContainerCannotActForItsCapcontidOrchestrator() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, _ in
            try makeFifo(daemon.root + "/cap")
            try makeFifo(daemon.root + "/go")
            // The container: waits, then becomes `contid set $$ 9393` (its parent: the orchestrator).
            try write("read y < $D/go; exec $CONTID set $$ 9393\n", to: daemon.root + "/cont.sh")
            // The orchestrator, in a user namespace (no CAP_AUDIT_CONTROL where it counts), with capcontid.
            try write("""
                busybox sh $D/cont.sh & c=$!
                echo "c=$c"
                $CONTID set $c 9292; echo "reg=$?"
                echo go > $D/go
                wait $c; echo "rc=$?"

                """, to: daemon.root + "/orch.sh")
            let out = try daemon.shell("""
                busybox sh -c 'read x < $D/cap; exec unshare -U -r busybox sh $D/orch.sh' 2>&1 & o=$!
                echo "o=$o"
                $CONTID capcontid $o 1; echo "cap=$?"
                echo go > $D/cap
                wait
                """)
            let v = Self.values(out)
            #expect(v["cap"] == "0", "\(out)")
            #expect(v["reg"] == "0", "\(out)")
            #expect(v["rc"] == "1", "\(out)")
            let c = try #require(v["c"]), o = try #require(v["o"])
            #expect(out.contains("EPERM: process \(c) acts for its parent \(o) from another container (9292, the parent's -1) and holds neither CAP_AUDIT_CONTROL nor capcontid\n"), "\(out)")
            try daemon.waitForLog { _ in ((try? Self.setRecords(daemon)) ?? []).count >= 2 }
            let records = try Self.setRecords(daemon)
            #expect(records.count == 2, "\(records)")
            #expect(records.last?.hasPrefix("op=set opid=\(c) contid=9393 old-contid=9292 pid=\(o) uid=0 ") == true, "\(records)")
            #expect(records.last?.hasSuffix(" res=0 errno=EPERM") == true, "\(records)")
        }
    }

    /// Reading container IDs needs the privilege a read of /proc/PID/audit_containerid needed;
    /// `contid set PID -1` reaches the daemon, which refuses it with EINVAL and records it.
    @Test func readsNeedPrivilegeAndUnsetIsRefusedWithEINVAL() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                busybox sleep 30 & t=$!
                echo "t=$t"
                setpriv --reuid 65534 --regid 65534 --clear-groups sh -c 'echo "u=$$"; exec $CONTID get '$t 2>&1; echo "get=$?"
                setpriv --reuid 65534 --regid 65534 --clear-groups $CONTID ps >/dev/null 2>&1; echo "ps=$?"
                echo "root=$($CONTID get $t)"
                $CONTID set $t -1 2>&1; echo "unset=$?"
                kill $t
                """)
            let v = Self.values(out)
            let t = try #require(v["t"]), u = try #require(v["u"])
            #expect(out.contains("EPERM: process \(u) may not read container IDs: it lacks CAP_AUDIT_CONTROL and capcontid\n"), "\(out)")
            #expect(v["get"] == "1")
            #expect(v["ps"] == "1")
            #expect(v["root"] == "-1")
            #expect(out.contains("EINVAL: a container ID cannot be unset (-1, unset and 18446744073709551615 all mean unset)\n"), "\(out)")
            #expect(v["unset"] == "1")
            try daemon.waitForLog { _ in ((try? Self.setRecords(daemon)) ?? []).count >= 1 }
            let records = try Self.setRecords(daemon)
            #expect(records.count == 1)
            #expect(records.first?.hasPrefix("op=set opid=\(t) contid=-1 old-contid=-1 ") == true, "\(records)")
            #expect(records.first?.hasSuffix(" res=0 errno=EINVAL") == true, "\(records)")
        }
    }
}
