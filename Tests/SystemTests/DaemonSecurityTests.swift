import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

extension DaemonTests {
    /// Every refusal of the ladder that guards against a writer: each with its errno,
    /// each recorded as a CONTAINER_OP with that errno, naming the real writer.
    @Test func refusalsComeFromTheChecksWithTheirErrnoAndAreRecorded() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, _ in
            let sh = realPath("/bin/sh")
            let (auid, ses) = ownLoginIDs()
            /// Runs `prefix /bin/sh -c SCRIPT`, where SCRIPT starts a sleeping target and asks to register it.
            func attempt(_ prefix: String, id: Int) throws -> (writer: String, target: String, output: String) {
                let out = try daemon.shell("""
                    \(prefix) /bin/sh -c 'busybox sleep 30 & t=$!; echo "w=$$"; echo "t=$t"; $CONTID set $t \(id); echo "rc=$?"; kill $t'
                    """)
                let v = Self.values(out)
                #expect(v["rc"] == "1", "\(out)")
                return (v["w"] ?? "?", v["t"] ?? "?", out)
            }
            // An unprivileged user.
            let unprivileged = try attempt("setpriv --reuid 65534 --regid 65534 --clear-groups", id: 501)
            #expect(unprivileged.output.contains("EPERM: process \(unprivileged.writer) lacks CAP_AUDIT_CONTROL and has no capcontid\n"),
                    "\(unprivileged.output)")
            // root without CAP_AUDIT_CONTROL.
            let noCap = try attempt("setpriv --bounding-set -audit_control --inh-caps -audit_control", id: 502)
            #expect(noCap.output.contains("EPERM: process \(noCap.writer) lacks CAP_AUDIT_CONTROL and has no capcontid\n"), "\(noCap.output)")
            // root of a new user namespace (all capabilities there, none in the initial one).
            let userNS = try attempt("unshare -U -r", id: 503)
            #expect(userNS.output.contains("EPERM: process \(userNS.writer) lacks CAP_AUDIT_CONTROL and has no capcontid\n"), "\(userNS.output)")
            // Self-set.
            let selfOut = try daemon.shell("""
                /bin/sh -c 'echo "w=$$"; $CONTID set $$ 504; echo "rc=$?"'
                """)
            let selfWriter = Self.values(selfOut)["w"] ?? "?"
            #expect(selfOut.contains("EXDEV: process \(selfWriter) cannot set its own container ID\n"), "\(selfOut)")
            #expect(Self.values(selfOut)["rc"] == "1")
            // A target that is not a descendant of the writer (a child of this test).
            let stranger = try spawnRedirected(["/usr/bin/busybox", "sleep", "30"], output: "/dev/null")
            defer { kill(stranger, SIGKILL); _ = try? waitChild(stranger) }
            let strangerOut = try daemon.shell("""
                /bin/sh -c 'echo "w=$$"; $CONTID set \(stranger) 505; echo "rc=$?"'
                """)
            let strangerWriter = Self.values(strangerOut)["w"] ?? "?"
            #expect(strangerOut.contains("EXDEV: process \(stranger) is not a descendant of the writer, process \(strangerWriter) (sh); contid acts for the process that runs it, and in $(...) that is a subshell: run contid set directly from the shell that started the target\n"), "\(strangerOut)")
            #expect(Self.values(strangerOut)["rc"] == "1")
            // A registered process trying to change its own ID.
            try makeFifo(daemon.root + "/own")
            let ownOut = try daemon.shell("""
                echo "sh=$$"
                busybox sh -c 'read x < $D/own; $CONTID set $$ 507; echo "rc=$?"' & c=$!
                echo "c=$c"
                $CONTID set $c 506; echo "reg=$?"
                echo go > $D/own
                wait
                """)
            let container = Self.values(ownOut)["c"] ?? "?"
            #expect(Self.values(ownOut)["reg"] == "0", "\(ownOut)")
            #expect(ownOut.contains("EXDEV: process \(container) cannot set its own container ID\n"), "\(ownOut)")
            #expect(Self.values(ownOut)["rc"] == "1")

            let tail = "auid=\(auid) ses=\(ses) comm=\"sh\" exe=\"\(sh)\""
            let expected = [
                "op=set opid=\(unprivileged.target) contid=501 old-contid=-1 pid=\(unprivileged.writer) uid=65534 \(tail) res=0 errno=EPERM",
                "op=set opid=\(noCap.target) contid=502 old-contid=-1 pid=\(noCap.writer) uid=0 \(tail) res=0 errno=EPERM",
                "op=set opid=\(userNS.target) contid=503 old-contid=-1 pid=\(userNS.writer) uid=0 \(tail) res=0 errno=EPERM",
                "op=set opid=\(selfWriter) contid=504 old-contid=-1 pid=\(selfWriter) uid=0 \(tail) res=0 errno=EXDEV",
                "op=set opid=\(stranger) contid=505 old-contid=-1 pid=\(strangerWriter) uid=0 \(tail) res=0 errno=EXDEV",
                "op=set opid=\(container) contid=506 old-contid=-1 pid=\(Self.values(ownOut)["sh"] ?? "") uid=0 \(tail) res=1",
                "op=set opid=\(container) contid=507 old-contid=506 pid=\(container) uid=0 auid=\(auid) ses=\(ses) comm=\"busybox\" exe=\"/usr/bin/busybox\" res=0 errno=EXDEV",
            ]
            try daemon.waitForLog { _ in ((try? Self.setRecords(daemon)) ?? []).count >= expected.count }
            let records = try Self.setRecords(daemon)
            #expect(records.count == expected.count, "\(records)")
            for (got, want) in zip(records, expected) { #expect(got == want) }
            // The registration socket is open to everyone (the refusal above came from the checks).
            var st = stat()
            #expect(stat(daemon.runDir + "/contid.sock", &st) == 0)
            #expect(st.st_mode & 0o777 == 0o666)
        }
    }
}
