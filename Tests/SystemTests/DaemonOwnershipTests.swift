import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// SPEC §4 on the live kernel: the owner of a container is its orchestrator (uid,
/// executable, own chain), so a later process of the same program injects after
/// the first exited (`runc run -d`, then `runc exec`); `--new` never joins; nesting
/// is decided by membership, so it works after the outer runtime exited; a target
/// named by a pidfd from inside a pid namespace is the right process.
extension DaemonTests {
    static let ownershipKey = "contid-owners"

    @Test func aLaterProcessOfTheSameOrchestratorInjectsAndAnotherProgramCannot() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            // Each "runtime" is a short-lived busybox sh that starts a target, registers it and exits.
            let out = try daemon.shell("""
                busybox sh -c 'busybox sleep 30 > /dev/null 2>&1 & echo "t1=$!"; $CONTID set $! 7001; echo "rc1=$?"'
                busybox sh -c 'busybox sleep 30 > /dev/null 2>&1 & echo "t2=$!"; $CONTID set $! 7001; echo "rc2=$?"'
                busybox sh -c 'busybox sleep 30 > /dev/null 2>&1 & echo "t3=$!"; $CONTID set --new $! 7001; echo "rc3=$?"'
                busybox sh -c 'busybox sleep 30 > /dev/null 2>&1 & echo "t4=$!"; $CONTID set $! 7001; echo "rc4=$?"; $CONTID set --new $! 7002; echo "rc5=$?"' 2>&1
                /bin/sh -c 'busybox sleep 30 > /dev/null 2>&1 & echo "t6=$!"; $CONTID set $! 7001; echo "rc6=$?"; kill $!' 2>&1
                """)
            let v = Self.values(out)
            defer { for k in ["t1", "t2", "t3", "t4"] { if let p = v[k].flatMap({ pid_t($0) }) { kill(p, SIGKILL) } } }
            #expect(v["rc1"] == "0", "\(out)")
            #expect(v["rc2"] == "0", "the same program, uid and chain after the first exited: \(out)")
            #expect(v["rc3"] == "1")
            #expect(out.contains("ENOTUNIQ: container ID 7001 is in use (registered by process "), "\(out)")
            #expect(v["rc4"] == "0")
            // The target has 7001 already and the writer is outside it: no nesting (EEXIST).
            #expect(v["rc5"] == "1", "\(out)")
            #expect(out.contains("EEXIST: process \(v["t4"] ?? "?") already has container ID 7001; only a process of that container may nest another in it, and the writer, process "), "\(out)")
            #expect(v["rc6"] == "1")
            let busybox = realPath("/usr/bin/busybox")
            #expect(out.contains("ENOTUNIQ: container ID 7001 is in use, owned by another orchestrator (process "), "\(out)")
            #expect(out.contains(": uid 0, \(busybox), in no container)"), "\(out)")
            let t1 = try #require(v["t1"].flatMap { pid_t($0) }), t2 = try #require(v["t2"].flatMap { pid_t($0) })
            #expect(try daemon.request(.get(pid: t1)) == [.ok("7001")])
            #expect(try daemon.request(.get(pid: t2)) == [.ok("7001")])
            let t3 = try #require(v["t3"].flatMap { pid_t($0) })
            #expect(try daemon.request(.get(pid: t3)) == [.ok("-1")])
        }
    }

    @Test func aRuntimeInsideADetachedContainerNestsAfterTheOuterRuntimeExited() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.ownershipKey)\n" }) { daemon, _ in
            let r = daemon.root
            try makeFifo(r + "/go")
            try makeFifo(r + "/go-inner")
            // The container: waits until its runtime has gone, then runs a runtime of its own.
            try write("""
                read x < $D/go
                busybox sh -c 'read y < $D/go-inner; echo n >> $D/w/file' & n=$!
                $CONTID set $n 7102 > $D/inner.out 2>&1; echo "nrc=$? n=$n" >> $D/inner.out
                echo o >> $D/w/file
                wait

                """, to: r + "/outer.sh")
            // `runc run -d`: the runtime registers the container and exits at once.
            let out = try daemon.shell("""
                busybox sh -c 'busybox sh $D/outer.sh > /dev/null 2>&1 & echo "c=$!"; $CONTID set $! 7101; echo "rc=$?"'
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            let c = try #require(v["c"].flatMap { pid_t($0) })
            // The outer runtime has exited (its shell returned); now the container starts its own.
            try release(r + "/go")
            #expect(waitUntil { String(decoding: (try? readAll(r + "/inner.out")) ?? [], as: UTF8.self).contains("nrc=") })
            let inner = String(decoding: try readAll(r + "/inner.out"), as: UTF8.self)
            #expect(inner.contains("nrc=0"), "\(inner)")
            try release(r + "/go-inner")
            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.ownershipKey } }
            #expect(try daemon.waitForLog { keyed($0).count >= 2 })
            let events = keyed(try daemon.events())
            #expect(events.first { $0.pid == c }?.chain == "7101")
            #expect(events.first { $0.pid != c }?.chain == "7102,^7101", "\(events.map(\.records))")
            #expect(try daemon.setRecordsContain("op=set opid=", "contid=7102 old-contid=7101 pid=\(c) "))
        }
    }

    /// SPEC §9: `contid set` in its own pid namespace names its target by a pidfd; contidd
    /// reads the target's pid in its own namespace from the pidfd, so the right process
    /// gets the ID (a bare pid would name the host's process of that number).
    @Test func setFromInsideAPidNamespaceRegistersTheRightProcess() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.ownershipKey)\n" }) { daemon, _ in
            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                /usr/bin/unshare -p -f --mount-proc /bin/sh -c '
                  busybox sh -c "read x < $D/go; echo x >> $D/w/file" & t=$!
                  echo "inner=$t"
                  $CONTID set $t 7301; echo "rc=$?"
                  echo "get=$($CONTID get $t)"
                  echo go > $D/go
                  wait'
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            #expect(v["get"] == "7301", "\(out)")
            let inner = try #require(v["inner"].flatMap { pid_t($0) })
            #expect(inner < 10, "the target's pid inside its namespace: \(out)")
            // The record names the target by its pid in contidd's namespace, and that
            // process's write carries the ID.
            let records = try Self.setRecords(daemon)
            #expect(records.count == 1)
            let opid = try #require(records.first.flatMap { r in
                r.split(separator: " ").first { $0.hasPrefix("opid=") }.flatMap { pid_t($0.dropFirst(5)) }
            })
            #expect(opid != inner, "\(records)")
            #expect(records.first?.contains("contid=7301 old-contid=-1 ") == true)
            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.ownershipKey } }
            #expect(try daemon.waitForLog { !keyed($0).isEmpty })
            let write = keyed(try daemon.events())
            #expect(write.count == 1)
            #expect(write.first?.pid == opid)
            #expect(write.first?.chain == "7301")
        }
    }
}

extension DaemonHarness {
    /// Whether some CONTAINER_OP set record of the log starts with `prefix` and contains `part`.
    func setRecordsContain(_ prefix: String, _ part: String) throws -> Bool {
        try DaemonTests.setRecords(self).contains { $0.hasPrefix(prefix) && $0.contains(part) }
    }
}
