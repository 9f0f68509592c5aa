import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

extension DaemonTests {
    /// With kernel audit switched off behind contidd's back, its user messages are
    /// dropped by the kernel: the records it submitted are written directly instead.
    @Test func ownRecordsAreWrittenDirectlyWhenTheKernelDropsThem() throws {
        try withDaemon(rules: { _ in "" }) { daemon, control in
            try control.setEnabled(false)
            let out = try daemon.shell("""
                busybox sleep 30 & t=$!
                echo "t=$t"
                $CONTID set $t 7777; echo "rc=$?"
                kill $t
                """)
            let v = Self.values(out)
            #expect(v["rc"] == "0", "\(out)")
            let t = try #require(v["t"])
            // contidd's own records: the registration and its NS_INFO, and the container's
            // drop when its only process was killed; each written directly.
            func own(_ events: [LoggedEvent]) -> [String] {
                let records = events.flatMap(\.records).filter { r in
                    (r.type == .containerOp || r.type == .nsInfo) && (r["opid"] == t || r["old-contid"] == "7777")
                }
                return records.map { r in "\(r.type.name) \(r["op"] ?? "-")" }
            }
            try daemon.waitForLog { own($0).count >= 3 }
            #expect(own(try daemon.events()) == ["CONTAINER_OP set", "NS_INFO -", "CONTAINER_OP drop"])
            let records = try Self.setRecords(daemon)
            #expect(records.count == 1)
            #expect(records.first?.hasPrefix("op=set opid=\(t) contid=7777 old-contid=-1 ") == true, "\(records)")
            #expect(try daemon.status()["records_written_directly"] == 3)
            try control.setEnabled(true)
        }
    }

    /// A client that fills the registration socket's connection table, or asks for a
    /// listing and never reads it, does not stop contidd from serving others.
    @Test func hostileClientsDoNotStallRegistration() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            // The table is empty first (start's status requests closed), then a listing nobody
            // reads takes its first place, 63 idle connections the others; the 7 after them
            // are refused (accepted and closed at once).
            #expect(waitUntil { daemon.openConnections == 0 }, "\(daemon.openConnections) connections open before the test's")
            let lazy = try UnixConnection.connect(path: daemon.runDir + "/contid.sock")
            try lazy.send(RegistrationRequest.ps.encoded())
            var idle: [UnixConnection] = []
            for _ in 0..<70 { idle.append(try UnixConnection.connect(path: daemon.runDir + "/contid.sock")) }
            #expect(waitUntil { daemon.openConnections == 64 }, "\(daemon.openConnections) connections open, not 64")
            // While the table is full each request is refused; once the idle ones are closed
            // (5 s without progress, the listing's too) the daemon serves requests again.
            let clock = ContinuousClock()
            let began = clock.now
            var reply: [RegistrationReply] = []
            var refusedRequests = 0
            let deadline = clock.now + .seconds(20)
            while clock.now < deadline {
                if let r = try? daemon.request(.status), !r.isEmpty { reply = r; break }
                refusedRequests += 1
                usleep(200_000)
            }
            #expect(!reply.isEmpty, "contidd never answered again")
            let waited = clock.now - began
            #expect(waited < .seconds(10), "contidd answered again after \(waited)")
            let after = try daemon.status()
            #expect(after["connections_refused"] == 7 + refusedRequests)
            #expect(after["connections_closed_idle"] == 64)
            #expect(after["connections_closed_full"] == 0)
            // Records kept flowing meanwhile: nothing lost.
            #expect(after["kernel_lost"] == 0)
            withExtendedLifetime(idle) {}
            withExtendedLifetime(lazy) {}
        }
    }
}
