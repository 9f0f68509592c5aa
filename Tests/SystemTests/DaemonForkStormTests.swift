import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

extension DaemonTests {
    static let stormKey = "contid-storm"

    /// Starts `count` containers: each a shell that waits on a fifo, is registered
    /// by this test (which speaks the socket protocol itself, so it is the writer),
    /// then execs `unshare --fork --pid --mount-proc busybox sh SCRIPT FILE`.
    static func startContainers(_ daemon: DaemonHarness, count: Int, firstID: Int, script: String) throws -> [(pid: pid_t, id: String, file: String)] {
        var containers: [(pid: pid_t, id: String, file: String)] = []
        for i in 0..<count {
            let fifo = "\(daemon.root)/f\(firstID + i)"
            let file = "\(daemon.root)/w/c\(firstID + i)"
            try makeFifo(fifo)
            let pid = try spawnRedirected(
                ["/usr/bin/busybox", "sh", "-c",
                 "read x < \(fifo); exec /usr/bin/unshare --fork --pid --mount-proc /usr/bin/busybox sh \(script) \(file)"],
                output: "\(daemon.root)/containers.out")
            let id = "\(firstID + i)"
            let reply = try daemon.request(.set(pid: pid, id: id, forParent: false))
            #expect(reply == [.ok(id)], "registering \(pid)")
            containers.append((pid, id, file))
        }
        return containers
    }

    @Test func forkStormOf20ContainersAttributesEveryEventExactly() throws {
        // One watch per container file (files watch inodes, so they also see the touches made
        // inside the containers' own mount namespaces).
        let rules = { (root: String) -> String in
            (1001...1020).map { i in
                _ = try? write("", to: "\(root)/w/c\(i)")
                return "-w \(root)/w/c\(i) -p wa -k \(Self.stormKey)\n"
            }.joined()
        }
        try withDaemon(rules: rules) { daemon, control in
            let lostBefore = try control.status().lost
            try write("""
                i=0
                while [ $i -lt 500 ]; do busybox sh -c ": >> $1"; i=$((i+1)); done

                """, to: daemon.root + "/storm.sh")
            let containers = try Self.startContainers(daemon, count: 20, firstID: 1001, script: daemon.root + "/storm.sh")
            let clock = ContinuousClock()
            let began = clock.now
            for c in containers { try release("\(daemon.root)/f\(c.id)") }
            for c in containers { #expect(try waitChild(c.pid) == 0) }
            let ran = clock.now - began

            let keyed = { (events: [LoggedEvent]) in events.filter { $0.key == Self.stormKey } }
            try daemon.waitForLog(within: .seconds(60)) { keyed($0).count >= 20 * 500 }
            let events = keyed(try daemon.events())
            let expectedChain = Dictionary(uniqueKeysWithValues: containers.map { ($0.file, $0.id) })
            var perContainer: [String: Int] = [:]
            var wrong = 0, missing = 0, stray = 0
            for e in events {
                guard let path = e.path, let want = expectedChain[path] else {
                    stray += 1
                    continue
                }
                perContainer[want, default: 0] += 1
                if let chain = e.chain { if chain != want { wrong += 1 } } else { missing += 1 }
            }
            #expect(events.count == 20 * 500, """
                events with key \(Self.stormKey), from \(daemon.contidd)\
                \(daemon.contidd.contains("/debug/") ? " (a debug contidd cannot keep up with this storm: build it with -c release and set CONTID_TEST_BIN_DIR, as .ci/run does)" : "")
                """)
            #expect(wrong == 0)
            #expect(missing == 0)
            #expect(stray == 0)
            for c in containers { #expect(perContainer[c.id] == 500, "container \(c.id)") }
            let status = try daemon.status()
            #expect(status["kernel_lost"] == 0)
            #expect(status["sequence_gaps"] == 0)
            #expect(status["connector_overruns"] == 0)
            #expect(try control.status().lost == lostBefore)
            print("fork storm: \(events.count) events in \(ran) (\(wrong) wrong, \(missing) missing); contidd: \(status)")
        }
    }
}
