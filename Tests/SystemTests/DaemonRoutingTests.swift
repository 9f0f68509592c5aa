import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// Routing's built-in destinations on the live kernel (SPEC §7, item 3): with
/// `container_logs = yes` each container's log holds its events and its nested
/// descendants', a registration that reuses an ID rotates the old file away first,
/// and `node_name` puts node= on every line contidd writes.
extension DaemonTests {
    static let routingKey = "contid-routing"

    @Test func containerLogsHoldNestedEventsAndAReusedIDStartsAFreshFile() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.routingKey)\n" },
                       config: { _ in "container_logs = yes\nnode_name = testnode\ngrace_ms = 300\n" }) { daemon, _ in
            let r = daemon.root
            try makeFifo(r + "/go")
            try makeFifo(r + "/go-inner")
            // Container 7201 runs a nested container 7202; each writes once, the outer after the inner.
            try write("""
                read x < $D/go
                busybox sh -c 'read y < $D/go-inner; echo inner >> $D/w/file' & n=$!
                $CONTID set $n 7202 > $D/inner.out 2>&1; echo "nrc=$? n=$n" >> $D/inner.out
                wait
                echo outer >> $D/w/file

                """, to: r + "/outer.sh")
            let out = try daemon.shell("""
                busybox sh $D/outer.sh > /dev/null 2>&1 & echo "c=$!"; $CONTID set $! 7201; echo "rc=$?"
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            let c = try #require(v["c"].flatMap { pid_t($0) })
            try release(r + "/go")
            #expect(waitUntil { String(decoding: (try? readAll(r + "/inner.out")) ?? [], as: UTF8.self).contains("nrc=") })
            let nested = String(decoding: try readAll(r + "/inner.out"), as: UTF8.self)
            #expect(nested.contains("nrc=0"), "\(nested)")
            try release(r + "/go-inner")
            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.routingKey } }
            #expect(try daemon.waitForLog { keyed($0).count >= 2 })
            let events = keyed(try daemon.events())
            let outer = try #require(events.first { $0.pid == c }), inner = try #require(events.first { $0.pid != c })
            #expect(outer.chain == "7201" && inner.chain?.hasSuffix(",^7201") == true, "\(events.map(\.records))")

            func serials(_ path: String) -> Set<UInt32> {
                let text = String(decoding: (try? readAll(path)) ?? [], as: UTF8.self)
                return Set(text.split(separator: "\n").compactMap { line -> UInt32? in
                    guard line.contains("key=\"\(Self.routingKey)\""), let r = try? AuditRecord(parsing: Array(line.utf8)) else { return nil }
                    return r.serial
                })
            }
            let logs = daemon.logDir + "/containers"
            // Both logs are written by the batch that wrote the host log; flushed with it.
            #expect(waitUntil { serials(logs + "/7201/audit.log") == [outer.serial, inner.serial] })
            #expect(serials(logs + "/7202/audit.log") == [inner.serial], "the nested container's log has only its own")
            let lines = daemon.logLines
            #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("node=testnode ") }, "\(lines.prefix(3))")
            let innerText = String(decoding: try readAll(logs + "/7202/audit.log"), as: UTF8.self)
            #expect(innerText.split(separator: "\n").allSatisfy { $0.hasPrefix("node=testnode type=") })
            #expect(innerText.contains("type=CONTAINER_ID msg=audit("))

            // Both containers end (their processes exited); a new process registered as 7202 is
            // another container: its log starts fresh, the old one is kept as audit.log.1.
            #expect(waitUntil(within: .seconds(20)) { (try? daemon.request(.get(pid: c))) != [.ok("7201")] })
            #expect(waitUntil(within: .seconds(20)) { (try? daemon.status())?["containers"] == 0 })
            let again = try daemon.shell("""
                busybox sh -c 'read x < $D/go; echo again >> $D/w/file' > /dev/null 2>&1 & echo "t=$!"; $CONTID set $! 7202; echo "rc=$?"
                """)
            #expect(Self.values(again)["rc"] == "0", "\(again)")
            let t = try #require(Self.values(again)["t"].flatMap { pid_t($0) })
            try release(r + "/go")
            #expect(try daemon.waitForLog { keyed($0).contains { $0.pid == t } })
            let third = try #require(keyed(try daemon.events()).first { $0.pid == t })
            #expect(waitUntil { serials(logs + "/7202/audit.log") == [third.serial] }, "\(serials(logs + "/7202/audit.log"))")
            #expect(serials(logs + "/7202/audit.log.1") == [inner.serial])
        }
    }
}
