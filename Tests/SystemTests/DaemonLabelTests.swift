import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit
import Testing

/// Labels on the live kernel (SPEC §6, §9): `contid set --label` records one
/// CONTAINER_INFO after the registration's CONTAINER_OP, `contid ps` shows them,
/// bad labels are refused with EINVAL/E2BIG before anything is recorded, and a
/// restart keeps them.
extension DaemonTests {
    @Test func labelsAreRecordedInContainerInfoShownByPsAndKeptOverARestart() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            let out = try daemon.shell("""
                busybox sleep 60 > /dev/null 2>&1 & t=$!; echo "t=$t"
                $CONTID set $t 7501 --label runtime=runc --label name=web-1 --label 'team=pay ments' --label tier=front; echo "rc=$?"
                busybox sleep 60 > /dev/null 2>&1 & b=$!; echo "b=$b"
                $CONTID set $b 7502 --label 'a=x,y'; echo "rc2=$?"
                $CONTID set $b 7502 --label novalue; echo "rc3=$?"
                $CONTID set $b 7502 --label "big=$(head -c 5000 /dev/zero | tr '\\0' v)"; echo "rc4=$?"
                """)
            let v = Self.values(out)
            let t = try #require(v["t"].flatMap { pid_t($0) }), b = try #require(v["b"].flatMap { pid_t($0) })
            defer { kill(t, SIGKILL); kill(b, SIGKILL) }
            #expect(v["rc"] == "0", "\(out)")
            #expect(v["rc2"] == "1")
            #expect(out.contains("EINVAL: label value \"x,y\" holds ','; label keys and values may not contain ',' or '='\n"), "\(out)")
            #expect(v["rc3"] == "1")
            #expect(out.contains("EINVAL: label \"novalue\" is not key=value\n"))
            #expect(v["rc4"] == "1")
            #expect(out.contains("E2BIG: labels of 5004 bytes (as k=v,k=v); at most 4096\n"), "\(out)")

            // One CONTAINER_INFO, right after the registration's CONTAINER_OP; nothing for the refusals.
            let info = "opid=\(t) contid=7501 runtime=\"runc\" name=\"web-1\" labels=7465616D3D706179206D656E74732C746965723D66726F6E74"
            #expect(try daemon.waitForLog { $0.flatMap(\.records).contains { $0.type == .containerInfo } })
            let records = try daemon.events().flatMap(\.records).filter { $0.type == .containerOp || $0.type == .containerInfo }
            #expect(records.map { "\($0.type.name) \($0.body.drop { $0 == " " })" }.filter { $0.hasPrefix("CONTAINER_INFO") }
                    == ["CONTAINER_INFO \(info)"])
            let opIndex = try #require(records.firstIndex { $0.type == .containerOp && $0["opid"] == "\(t)" })
            #expect(records[opIndex + 1].type == .containerInfo)
            #expect(records.filter { $0.type == .containerOp && $0["opid"] == "\(b)" }.isEmpty, "malformed requests are not recorded")
            // ausearch reads it like any record (by its event id: it knows no name for type 2908).
            let serial = records[opIndex + 1].serial
            let search = try runCapturing(["/usr/sbin/ausearch", "--input", daemon.logDir + "/audit.log", "-a", "\(serial)"])
            #expect(search.output.contains("type=CONTAINER_INFO msg=audit("), "\(search.output)")
            #expect(try ContainerInfo.parse(body: Array(info.utf8)).labels.encoded == "runtime=runc,name=web-1,team=pay ments,tier=front")

            func ps(_ args: String) throws -> String { try daemon.shell("$CONTID ps \(args)") }
            let table = try ps("--contained")
            #expect(table.contains("LABELS"), "\(table)")
            #expect(table.split(separator: "\n").contains { $0.hasPrefix("\(t) ") && $0.hasSuffix(" runtime=runc,name=web-1,team=pay ments,tier=front") },
                    "\(table)")
            let tree = try ps("--tree")
            #expect(tree.split(separator: "\n").contains { $0.contains("\(t) ") && $0.hasSuffix(" [7501] {runtime=runc,name=web-1,team=pay ments,tier=front}") },
                    "\(tree)")

            // kill -9 and a restart: the labels come back from the snapshot.
            try daemon.killHard()
            try daemon.start()
            #expect(try ps("--contained").contains(" runtime=runc,name=web-1,team=pay ments,tier=front"))
        }
    }
}

extension DaemonTests {
    /// `json_log`: the events of the host log as JSON lines, each with its chain and its
    /// innermost container's labels.
    @Test func theJSONLogCarriesEachEventsLabels() throws {
        try withKernelAuditState { control in
            let rulesBefore = try control.listRules()
            let statusBefore = try control.status()
            // The harness passes --config /dev/null first; a later --config wins.
            let config = "/tmp/contid-jsonlog-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).conf"
            defer { unlink(config) }
            let daemon = try DaemonHarness(rules: "", extraArguments: ["--config", config])
            let json = daemon.root + "/log-events.json"
            try write("json_log = \(json)\n", to: config)
            try write("-w \(daemon.root)/w -p wa -k \(Self.ownershipKey)\n", to: daemon.rulesDir + "/10-test.rules")
            try daemon.start()
            defer { _ = try? daemon.stop() }
            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                busybox sh -c 'read x < $D/go; echo x >> $D/w/file' & t=$!
                $CONTID set $t 7601 --label name=web --label team=pay; echo "rc=$?"
                echo go > $D/go; wait
                echo h >> $D/w/file
                """)
            #expect(Self.values(out)["rc"] == "0", "\(out)")
            // The watched writes (the rule's CONFIG_CHANGE carries the key too).
            let lines = { completeLines(json).filter { $0.contains("\"records\":[{\"type\":\"SYSCALL\"") && $0.contains("\"key\":\"\(Self.ownershipKey)\"") } }
            #expect(waitUntil { lines().count >= 2 }, "\(completeLines(json))")
            let got = lines()
            #expect(got.count == 2, "\(got)")
            #expect(got.contains { $0.contains(",\"contid\":\"7601\",\"labels\":{\"name\":\"web\",\"team\":\"pay\"},\"records\":[") }, "\(got)")
            #expect(got.contains { $0.contains(",\"contid\":null,\"labels\":{},\"records\":[") }, "\(got)")
            #expect(try daemon.stop() == 0)
            #expect(try control.listRules() == rulesBefore)
            let statusAfter = try control.status()
            #expect(statusAfter.enabled == statusBefore.enabled)
            #expect(statusAfter.pid == statusBefore.pid)
            #expect(statusAfter.backlogLimit == statusBefore.backlogLimit)
        }
    }
}
