import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// SPEC §6 namespace events on the live kernel: a registered process's
/// `unshare --net --uts` is one NS_CREATE per namespace with the inodes `stat -L`
/// gives and the container's chain; `nsenter` is NS_CHANGE; the namespaces are
/// NS_DESTROY within 2 s of their last task's exit, unless a bind mount
/// (`ip netns attach`, as `ip netns add` does) keeps them, until it is removed.
extension DaemonTests {
    static func namespaceRecords(_ events: [LoggedEvent], _ type: AuditRecordType) -> [AuditRecord] {
        events.flatMap(\.records).filter { $0.type == type }
    }

    @Test func unshareIsNSCreateNsenterIsNSChangeAndTheLastExitIsNSDestroy() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                busybox mkfifo $D/go1 $D/go2
                (read x < $D/go1; exec /usr/bin/unshare --net --uts busybox sleep 60) > /dev/null 2>&1 & p=$!
                $CONTID set $p 7501; echo "rc=$?"
                echo "p=$p"; echo "oldnet=$(stat -L -c %i /proc/$p/ns/net)"; echo "olduts=$(stat -L -c %i /proc/$p/ns/uts)"
                for k in cgroup ipc mnt net pid time user uts; do echo "ns_$k=$(stat -L -c %i /proc/$p/ns/$k)"; done
                old=$(stat -L -c %i /proc/$p/ns/net)
                echo go > $D/go1
                n=0; while [ "$(stat -L -c %i /proc/$p/ns/net)" = "$old" ] && [ $n -lt 500 ]; do busybox sleep 0.01; n=$((n+1)); done
                echo "newnet=$(stat -L -c %i /proc/$p/ns/net)"; echo "newuts=$(stat -L -c %i /proc/$p/ns/uts)"
                (read x < $D/go2; exec /usr/bin/nsenter -t $p -n -u busybox sleep 60) > /dev/null 2>&1 & q=$!
                $CONTID set $q 7502; echo "qrc=$?"
                echo go > $D/go2
                n=0; while [ "$(stat -L -c %i /proc/$q/ns/net)" = "$old" ] && [ $n -lt 500 ]; do busybox sleep 0.01; n=$((n+1)); done
                echo "q=$q"; echo "qnet=$(stat -L -c %i /proc/$q/ns/net)"
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0" && v["qrc"] == "0", "\(out)")
            let p = try #require(v["p"]), q = try #require(v["q"])
            let newNet = try #require(v["newnet"]), newUTS = try #require(v["newuts"])
            #expect(newNet != v["oldnet"] && newUTS != v["olduts"] && v["qnet"] == newNet, "\(out)")
            defer { _ = try? daemon.shell("kill -9 \(p) \(q) 2>/dev/null; true") }

            // NS_INFO at the registration: all eight kinds, as stat -L gives them.
            let info = { (e: [LoggedEvent]) in Self.namespaceRecords(e, .nsInfo).first { $0["opid"] == p } }
            #expect(try daemon.waitForLog { info($0) != nil })
            let i = try #require(info(try daemon.events()))
            #expect(i["contid"] == "7501" && i["ns_dev"] != nil, "\(i.line)")
            for kind in ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"] {
                #expect(i[kind] != nil && i[kind] == v["ns_\(kind)"], "\(kind): \(i.line)")
            }

            let creates = { (e: [LoggedEvent]) in Self.namespaceRecords(e, .nsCreate).filter { $0["pid"] == p } }
            #expect(try daemon.waitForLog { creates($0).count >= 2 }, "\(daemon.logLines.suffix(20))")
            let c = creates(try daemon.events())
            #expect(c.count == 2, "\(c.map(\.line))")
            let net = c.first { $0["ns"] == "net" }, uts = c.first { $0["ns"] == "uts" }
            #expect(net?["op"] == "unshare" && net?["contid"] == "7501", "\(c.map(\.line))")
            #expect(net?["old"] == v["oldnet"] && net?["new"] == newNet, "\(c.map(\.line))")
            #expect(uts?["old"] == v["olduts"] && uts?["new"] == newUTS, "\(c.map(\.line))")
            #expect(net?["nsid"].flatMap(UInt64.init) != nil, "the 64-bit id: \(c.map(\.line))")

            let changes = { (e: [LoggedEvent]) in Self.namespaceRecords(e, .nsChange).filter { $0["pid"] == q } }
            #expect(try daemon.waitForLog { changes($0).count >= 2 }, "\(daemon.logLines.suffix(20))")
            let ch = changes(try daemon.events())
            #expect(ch.count == 2, "\(ch.map(\.line))")
            let chNet = ch.first { $0["ns"] == "net" }
            #expect(chNet?["op"] == "setns" && chNet?["contid"] == "7502", "\(ch.map(\.line))")
            #expect(chNet?["old"] == v["oldnet"] && chNet?["new"] == newNet, "\(ch.map(\.line))")
            #expect(Self.namespaceRecords(try daemon.events(), .nsDestroy).filter { $0["ino"] == newNet }.isEmpty)

            // The last two tasks in the namespaces exit: NS_DESTROY for both within 2 s.
            _ = try daemon.shell("kill -9 \(p) \(q); while kill -0 \(p) 2>/dev/null || kill -0 \(q) 2>/dev/null; do busybox sleep 0.01; done")
            let destroyed = { (e: [LoggedEvent]) in
                Self.namespaceRecords(e, .nsDestroy).filter { $0["ino"] == newNet || $0["ino"] == newUTS }
            }
            #expect(try daemon.waitForLog(within: .seconds(2)) { destroyed($0).count >= 2 }, "\(daemon.logLines.suffix(20))")
            let d = destroyed(try daemon.events())
            #expect(d.count == 2, "\(d.map(\.line))")
            #expect(d.first { $0["ino"] == newNet }?["ns"] == "net")
            #expect(d.first { $0["ino"] == newNet }?["nsid"] == net?["nsid"])
        }
    }

    @Test func aNetworkNamespaceHeldByABindMountIsDestroyedOnlyWhenItIsRemoved() throws {
        let name = "contid-test-\(getpid())"
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            defer { _ = try? runClean(["/usr/sbin/ip", "netns", "del", name]) }
            let out = try daemon.shell("""
                busybox mkfifo $D/go
                (read x < $D/go; exec /usr/bin/unshare --net busybox sleep 60) > /dev/null 2>&1 & p=$!
                $CONTID set $p 7503; echo "rc=$?"
                old=$(stat -L -c %i /proc/$p/ns/net)
                echo go > $D/go
                n=0; while [ "$(stat -L -c %i /proc/$p/ns/net)" = "$old" ] && [ $n -lt 500 ]; do busybox sleep 0.01; n=$((n+1)); done
                echo "p=$p"; echo "net=$(stat -L -c %i /proc/$p/ns/net)"
                /usr/sbin/ip netns attach \(name) $p; echo "attach=$?"
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0" && v["attach"] == "0", "\(out)")
            let p = try #require(v["p"]), net = try #require(v["net"])
            defer { _ = try? daemon.shell("kill -9 \(p) 2>/dev/null; true") }
            #expect(try daemon.waitForLog { Self.namespaceRecords($0, .nsCreate).contains { $0["new"] == net } })
            let probesBefore = try daemon.status()["namespace_probes"] ?? 0
            _ = try daemon.shell("kill -9 \(p); while kill -0 \(p) 2>/dev/null; do busybox sleep 0.01; done")
            // The daemon looked at the namespace several times (its handle is alive) and,
            // after the held exit, holds it as a candidate: no NS_DESTROY.
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            var status = try daemon.status()
            while clock.now < deadline, (status["namespace_candidates"] ?? 0) < 1 || (status["namespace_probes"] ?? 0) < probesBefore + 4 {
                usleep(50_000)
                status = try daemon.status()
            }
            #expect((status["namespace_candidates"] ?? 0) >= 1, "\(status)")
            #expect((status["namespace_probes"] ?? 0) >= probesBefore + 4, "\(status)")
            #expect(Self.namespaceRecords(try daemon.events(), .nsDestroy).filter { $0["ino"] == net }.isEmpty)
            let del = try runClean(["/usr/sbin/ip", "netns", "del", name])
            #expect(del.status == 0, "\(del.output)")
            #expect(try daemon.waitForLog(within: .seconds(2)) {
                Self.namespaceRecords($0, .nsDestroy).contains { $0["ino"] == net && $0["ns"] == "net" }
            }, "\(daemon.logLines.suffix(20))")
        }
    }
}
