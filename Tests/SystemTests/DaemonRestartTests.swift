import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

extension DaemonTests {
    static let restartKey = "contid-restart"

    /// kill -9 of contidd with containers running, then a restart on the same state
    /// directory: the live containers keep their IDs (from the snapshot), a process
    /// forked while contidd was down is found by the /proc scan under its container,
    /// and the events made after the restart carry the right chains.
    @Test func killMinus9AndRestartKeepEveryLiveContainer() throws {
        let ids = [2001, 2002, 2003]
        let rules = { (root: String) -> String in
            ids.map { i in
                _ = try? write("", to: "\(root)/w/c\(i)")
                return "-w \(root)/w/c\(i) -p wa -k \(Self.restartKey)\n"
            }.joined()
        }
        try withDaemon(rules: rules) { daemon, control in
            let lostBefore = try control.status().lost
            let r = daemon.root
            try write("""
                echo a >> $1
                busybox sh -c "echo b >> $1; true"
                read x < $2/s$3
                busybox sh -c "read y < $2/t$3; echo c >> $1; busybox sh -c 'echo d >> $1; true'; true" &
                : > $2/v$3
                read z < $2/u$3
                echo e >> $1
                busybox sh -c "busybox sh -c 'echo f >> $1; true'; true"
                wait

                """, to: r + "/restart.sh")
            var containers: [(pid: pid_t, id: Int)] = []
            for id in ids {
                for stage in ["f", "s", "t", "u"] { try makeFifo("\(r)/\(stage)\(id)") }
                let pid = try spawnRedirected(
                    ["/usr/bin/busybox", "sh", "-c",
                     "read x < \(r)/f\(id); exec /usr/bin/unshare --fork --pid --mount-proc /usr/bin/busybox sh \(r)/restart.sh \(r)/w/c\(id) \(r) \(id)"],
                    output: r + "/containers.out")
                #expect(try daemon.request(.set(pid: pid, id: "\(id)", forParent: false)) == [.ok("\(id)")])
                containers.append((pid, id))
            }
            for c in containers { try release("\(r)/f\(c.id)") }

            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.restartKey } }
            #expect(try daemon.waitForLog { keyed($0).count >= 2 * ids.count })
            // Let the periodic snapshot pass over the processes forked since the registrations... or not:
            // the restart must work from whatever the last snapshot had.
            try daemon.killHard()
            #expect(try control.listRules().contains { $0.key == Self.restartKey }, "a killed contidd cannot remove its rules")

            // While contidd is down, each container forks a process that waits (v<ID> exists
            // once it is forked).
            for c in containers { try release("\(r)/s\(c.id)") }
            for c in containers {
                #expect(waitUntil { access("\(r)/v\(c.id)", F_OK) == 0 }, "container \(c.id) did not fork while contidd was down")
            }
            try daemon.start()
            #expect(daemon.stderrText.contains("a previous contidd did not stop cleanly"))
            #expect(daemon.stderrText.contains("restored \(ids.count) containers"), "\(daemon.stderrText)")
            for c in containers {
                #expect(try daemon.request(.get(pid: c.pid)) == [.ok("\(c.id)")], "registered process \(c.pid)")
            }
            for c in containers {
                try release("\(r)/t\(c.id)")
                try release("\(r)/u\(c.id)")
            }
            for c in containers { #expect(try waitChild(c.pid) == 0) }

            #expect(try daemon.waitForLog { keyed($0).count >= 6 * ids.count })
            let events = keyed(try daemon.events())
            #expect(events.count == 6 * ids.count)
            for c in containers {
                let mine = events.filter { $0.path == "\(r)/w/c\(c.id)" }
                #expect(mine.count == 6, "container \(c.id)")
                #expect(mine.allSatisfy { $0.chain == "\(c.id)" }, "container \(c.id): \(mine.map { $0.chain ?? "none" })")
            }
            #expect(try daemon.status()["kernel_lost"] == 0)
            #expect(try control.status().lost == lostBefore)
        }
    }
}
