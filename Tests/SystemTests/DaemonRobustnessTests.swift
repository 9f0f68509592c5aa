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
            try daemon.waitForLog(within: .seconds(5)) { _ in ((try? Self.setRecords(daemon)) ?? []).count >= 1 }
            let records = try Self.setRecords(daemon)
            #expect(records.count == 1)
            #expect(records.first?.hasPrefix("op=set opid=\(t) contid=7777 old-contid=-1 ") == true, "\(records)")
            #expect((try daemon.status()["records_written_directly"] ?? 0) >= 1)
            try control.setEnabled(true)
        }
    }

    /// A client that fills the registration socket's connection table, or asks for a
    /// listing and never reads it, does not stop contidd from serving others.
    @Test func hostileClientsDoNotStallRegistration() throws {
        try withDaemon(rules: { _ in "" }) { daemon, _ in
            var idle: [UnixConnection] = []
            for _ in 0..<70 { if let c = try? UnixConnection.connect(path: daemon.runDir + "/contid.sock") { idle.append(c) } }
            // A listing nobody reads.
            let lazy = try UnixConnection.connect(path: daemon.runDir + "/contid.sock")
            try? lazy.send(RegistrationRequest.ps.encoded())
            usleep(300_000)
            // The table is full: further connections are refused (and counted) until idle
            // ones close; after the idle timeout the daemon serves requests again.
            let clock = ContinuousClock()
            let began = clock.now
            var reply: [RegistrationReply] = []
            let deadline = clock.now + .seconds(15)
            while clock.now < deadline {
                if let r = try? daemon.request(.status), !r.isEmpty { reply = r; break }
                usleep(200_000)
            }
            #expect(!reply.isEmpty, "contidd never answered again")
            #expect(clock.now - began < .seconds(10))
            let after = try daemon.status()
            #expect((after["connections_refused"] ?? 0) >= 1)
            #expect((after["connections_closed_idle"] ?? 0) >= 60)
            // Records kept flowing meanwhile: nothing lost.
            #expect(after["kernel_lost"] == 0)
            withExtendedLifetime(idle) {}
            withExtendedLifetime(lazy) {}
        }
    }
}
