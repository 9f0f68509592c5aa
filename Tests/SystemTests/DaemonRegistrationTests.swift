import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// contidd on the live kernel: registration through `contid set` (the proposal's
/// test-suite steps), refusals, attribution, ausearch. Serialized, and across
/// processes by the audit flock.
@Suite(.serialized)
struct DaemonTests {
    static let key = "contid-systest"

    /// Lines `name=value` of a script's output.
    static func values(_ output: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in output.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "="), !line.contains(" ") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }

    /// The CONTAINER_OP set records of the log, by target pid, in order.
    static func setRecords(_ daemon: DaemonHarness) throws -> [String] {
        let records: [AuditRecord] = try daemon.events().flatMap { $0.records }
        let sets = records.filter { r in r.type == .containerOp && r["op"] == "set" }
        return sets.map { r in String(r.body.drop { $0 == " " }) }
    }

    @Test func upstreamTestSuiteStepsGiveExactErrnosRecordsAndContainerIDs() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, _ in
            let sh = realPath("/bin/sh")
            let (auid, ses) = ownLoginIDs()
            // Steps 1-7 of the proposal's test suite (audit-testsuite tests/containerid), through `contid set`.
            let out = try daemon.shell("""
                echo "sh=$$"
                $CONTID set $$ 111; echo "rc1=$?"
                busybox sleep 30 & t1=$!; echo "t1=$t1"
                $CONTID set $t1 123456; echo "rc2=$?"
                $CONTID set $t1 123456; echo "rc3=$?"
                $CONTID set $t1 18446744073709551615; echo "rc4=$?"
                $CONTID set $t1 123457; echo "rc5=$?"
                busybox sleep 30 & t1a=$!; echo "t1a=$t1a"
                $CONTID set $t1a 123456; echo "rc6=$?"
                busybox sh -c 'busybox sleep 30 & wait' & t2=$!; echo "t2=$t2"
                while [ -z "$(cat /proc/$t2/task/$t2/children)" ]; do busybox sleep 0.05; done
                $CONTID set $t2 123458; echo "rc7=$?"
                echo "get1=$($CONTID get $t1)"
                echo "get2=$($CONTID get $t2)"
                kill $t1 $t1a; pkill -P $t2; kill $t2
                wait
                """)
            let v = Self.values(out)
            let shPID = try #require(v["sh"]), t1 = try #require(v["t1"]), t1a = try #require(v["t1a"]), t2 = try #require(v["t2"])
            #expect(out.contains("EXDEV: process \(shPID) cannot set its own container ID\n"), "\(out)")
            #expect(v["rc1"] == "1")
            #expect(v["rc2"] == "0")
            #expect(out.contains("EEXIST: process \(t1) already has container ID 123456, registered by process \(shPID) itself\n"))
            #expect(v["rc3"] == "1")
            #expect(out.contains("EINVAL: a container ID cannot be unset (-1, unset and 18446744073709551615 all mean unset)\n"))
            #expect(v["rc4"] == "1")
            #expect(v["rc5"] == "1")
            #expect(v["rc6"] == "0")
            #expect(out.contains("EBUSY: process \(t2) has 1 child; register a container's first process before it forks\n"))
            #expect(v["rc7"] == "1")
            #expect(v["get1"] == "123456")
            #expect(v["get2"] == "-1")

            // Step 8: a CONTAINER_OP record for every attempt, failures included, in order.
            let tail = "pid=\(shPID) uid=0 auid=\(auid) ses=\(ses) comm=\"sh\" exe=\"\(sh)\""
            let expected = [
                "op=set opid=\(shPID) contid=111 old-contid=-1 \(tail) res=0 errno=EXDEV",
                "op=set opid=\(t1) contid=123456 old-contid=-1 \(tail) res=1",
                "op=set opid=\(t1) contid=123456 old-contid=123456 \(tail) res=0 errno=EEXIST",
                "op=set opid=\(t1) contid=-1 old-contid=123456 \(tail) res=0 errno=EINVAL",
                "op=set opid=\(t1) contid=123457 old-contid=123456 \(tail) res=0 errno=EEXIST",
                "op=set opid=\(t1a) contid=123456 old-contid=-1 \(tail) res=1",
                "op=set opid=\(t2) contid=123458 old-contid=-1 \(tail) res=0 errno=EBUSY",
            ]
            try daemon.waitForLog { _ in ((try? Self.setRecords(daemon)) ?? []).count >= expected.count }
            #expect(try Self.setRecords(daemon) == expected)
            // The object goes when its last member exits: one drop record.
            try daemon.waitForLog { events in
                events.flatMap(\.records).contains { $0.type == .containerOp && $0["op"] == "drop" }
            }
            let drops = try daemon.events().flatMap(\.records).filter { $0.type == .containerOp && $0["op"] == "drop" }
            #expect(drops.count == 1)
            #expect(drops.first.map { String($0.body.drop { $0 == " " }) }?.hasSuffix("contid=-1 old-contid=123456 res=1") == true)

            // Attribution: a registered process, its grandchild, and a nested container.
            try makeFifo(daemon.root + "/go")
            try makeFifo(daemon.root + "/go2")
            try write("busybox sh -c 'echo g >> $D/w/file; true'\ntrue\n", to: daemon.root + "/child.sh")
            try write("read x < $D/go2\necho n >> $D/w/file\n", to: daemon.root + "/nested.sh")
            try write("""
                read x < $D/go
                echo a >> $D/w/file
                busybox sh $D/child.sh
                busybox sh $D/nested.sh & n=$!
                $CONTID set $n 4343; echo "nrc=$?"
                echo "n=$n"
                echo go > $D/go2
                wait
                true

                """, to: daemon.root + "/container.sh")
            let out2 = try daemon.shell("""
                busybox sh $D/container.sh & c=$!
                echo "c=$c"
                $CONTID set $c 4242; echo "crc=$?"
                echo go > $D/go
                wait
                """)
            let v2 = Self.values(out2)
            #expect(v2["crc"] == "0", "\(out2)")
            #expect(v2["nrc"] == "0", "\(out2)")
            let c = try #require(v2["c"].flatMap { Int32($0) }), n = try #require(v2["n"].flatMap { Int32($0) })
            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.key } }
            try daemon.waitForLog { keyed($0).count >= 3 }
            let events = keyed(try daemon.events())
            #expect(events.count == 3, "\(events.map(\.records))")
            // The registered process itself, then its grandchild (child.sh's inner sh), then the nested container.
            let byPID = Dictionary(grouping: events, by: { $0.pid ?? 0 })
            #expect(byPID[c]?.count == 1)
            #expect(byPID[c]?.first?.chain == "4242")
            #expect(byPID[n]?.first?.chain == "4343,^4242")
            let grandchild = events.filter { $0.pid != c && $0.pid != n }
            #expect(grandchild.count == 1)
            #expect(grandchild.first?.chain == "4242")
            for e in events {
                // SYSCALL ends with ` record=1`, and one CONTAINER_ID with the same timestamp follows.
                #expect(e.syscall?.line.hasSuffix("key=\"\(Self.key)\" record=1") == true, "\(e.records)")
                #expect(e.containerIDs.count == 1)
                let time = e.syscall.map { "\($0.time)" } ?? "?"
                #expect(e.containerIDs.first?.line.hasPrefix("type=CONTAINER_ID msg=audit(\(time):\(e.serial)): record=1 contid=") == true)
            }
            // ausearch reads the host log: the keyed events come back with their CONTAINER_ID records.
            let search = try runCapturing(["/usr/sbin/ausearch", "--input", daemon.logDir + "/audit.log", "-k", Self.key])
            #expect(search.status == 0)
            #expect(search.output.components(separatedBy: "\ntype=CONTAINER_ID ").count - 1 == 3, "\(search.output)")
            for e in events { #expect(search.output.contains(e.containerIDs.first!.line)) }
            #expect(try daemon.status()["kernel_lost"] == 0)
        }
    }
}

