import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import Testing

/// Runs auditd 3.x in the foreground with its own log and plugin directory, for the
/// sources that sit beside it (multicast) or under it (plugin). Stopped with SIGTERM.
final class AuditdHarness {
    let root: String
    private(set) var pid: pid_t = 0

    init(root: String, plugin: (path: String, args: String)? = nil) throws {
        self.root = root + "/auditd"
        mkdir(self.root, 0o750)
        mkdir(self.root + "/plugins.d", 0o750)
        try write("""
            local_events = yes
            write_logs = yes
            log_file = \(self.root)/audit.log
            log_format = RAW
            flush = INCREMENTAL_ASYNC
            freq = 20
            max_log_file = 100
            num_logs = 2
            max_log_file_action = ROTATE
            name_format = NONE
            space_left = 2
            space_left_action = IGNORE
            admin_space_left = 1
            admin_space_left_action = IGNORE
            disk_full_action = IGNORE
            disk_error_action = IGNORE
            use_libwrap = no
            plugin_dir = \(self.root)/plugins.d
            q_depth = 2000
            overflow_action = SYSLOG
            max_restarts = 10

            """, to: self.root + "/auditd.conf")
        chmod(self.root + "/auditd.conf", 0o640)
        if let plugin {
            try write("""
                active = yes
                direction = out
                path = \(plugin.path)
                type = always
                args = \(plugin.args)
                format = string

                """, to: self.root + "/plugins.d/contidd.conf")
            chmod(self.root + "/plugins.d/contidd.conf", 0o640)
        }
    }

    func start() throws {
        guard access("/usr/sbin/auditd", X_OK) == 0 else {
            throw SystemTestPrecondition(description: "auditd is not installed (apt-get install auditd)")
        }
        pid = try spawnRedirected(["/usr/sbin/auditd", "-n", "-c", root], output: root + "/auditd.out")
        // Registered as the kernel's audit daemon once it is up.
        let control = try AuditNetlink(mode: .unicast)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            if try control.status().pid == UInt32(pid) { return }
            usleep(50_000)
        }
        throw SystemTestPrecondition(description: "auditd did not register: \((try? readAll(root + "/auditd.out")).map { String(decoding: $0, as: UTF8.self) } ?? "")")
    }

    func stop() throws {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        _ = try waitChild(pid)
        pid = 0
    }

    var logLines: [String] { completeLines(root + "/audit.log") }

    deinit { if pid > 0 { kill(pid, SIGKILL); _ = try? waitChild(pid) } }
}

extension DaemonTests {
    /// capcontid delegates registration to an orchestrator in a user namespace, which has no
    /// CAP_AUDIT_CONTROL in the initial one: it may then register its own children.
    @Test func capcontidLetsAnOrchestratorInAUserNamespaceRegisterItsChildren() throws {
        try withDaemon(rules: { "-w \($0)/w -p wa -k \(Self.key)\n" }) { daemon, _ in
            // One fifo per stage: a writer of the first stage still open when the second
            // stage's reader opens the same fifo would hand that reader an EOF.
            try makeFifo(daemon.root + "/cap")
            try makeFifo(daemon.root + "/go")
            let out = try daemon.shell("""
                echo "sh=$$"
                busybox sh -c 'read x < $D/cap; exec unshare -U -r busybox sh -c "busybox sh -c \\"read y < $D/go; : >> $D/w/file\\" & c=\\$!; echo c=\\$c; \\$CONTID set \\$c 9191; echo rc=\\$?; echo go > $D/go; wait"' & o=$!
                echo "o=$o"
                $CONTID capcontid $o 1; echo "cap=$?"
                echo go > $D/cap
                wait
                """)
            let v = Self.values(out)
            #expect(v["cap"] == "0", "\(out)")
            #expect(v["rc"] == "0", "\(out)")
            let orchestrator = try #require(v["o"]), child = try #require(v["c"]), shell = try #require(v["sh"])
            try daemon.waitForLog { events in events.contains { $0.key == Self.key } }
            let events = try daemon.events()
            let write = try #require(events.first { $0.key == Self.key })
            #expect(write.pid.map(String.init) == child)
            #expect(write.chain == "9191")
            let records = events.flatMap(\.records)
            let cap = records.first { $0.type == .setCapContID }
            #expect(cap.map { String($0.body.drop { $0 == " " }) }?.hasPrefix("opid=\(orchestrator) capcontid=1 old-capcontid=0 pid=\(shell) uid=0 ") == true,
                    "\(cap?.line ?? "no SET_CAPCONTID")")
            #expect(cap?["res"] == "1")
            let set = records.first { $0.type == .containerOp && $0["op"] == "set" }
            #expect(set.map { String($0.body.drop { $0 == " " }) }?.hasPrefix("op=set opid=\(child) contid=9191 old-contid=-1 pid=\(orchestrator) uid=0 ") == true,
                    "\(set?.line ?? "no CONTAINER_OP")")
            #expect(set?["res"] == "1")
        }
    }

    /// Beside a running auditd: contidd reads the multicast group, its records go through the
    /// kernel and reach auditd's own log as well, and its host log carries the chains.
    @Test func multicastBesideAuditdAttributesAndAuditdLogsTheRegistration() throws {
        try withKernelAuditState { control in
            let daemon = try DaemonHarness(rules: "")
            try write("-w \(daemon.root)/w -p wa -k \(Self.key)\n", to: daemon.rulesDir + "/10-test.rules")
            let auditd = try AuditdHarness(root: daemon.root)
            try auditd.start()
            defer { try? auditd.stop() }
            daemon.source = "multicast"
            try daemon.start()
            defer { _ = try? daemon.stop() }
            let child = try Self.registerAndWrite(daemon, id: "5151")
            // auditd logged the registration too, as the user message the kernel relayed.
            var relayed: String?
            waitUntil {
                relayed = auditd.logLines.first { $0.contains("op=set opid=\(child) contid=5151 ") }
                return relayed != nil
            }
            #expect(relayed?.hasPrefix("type=UNKNOWN[2900] msg=audit(") == true, "\(relayed ?? "not in auditd's log")")
            #expect(relayed?.contains("res=1'") == true)
            let s = try daemon.status()
            #expect(s["sequence_gaps"] == 0)
            #expect(s["socket_overruns"] == 0)
            #expect(try daemon.stop() == 0)
            try auditd.stop()
            // contidd removed what it added; auditd left the kernel with no daemon.
            #expect(try control.listRules().isEmpty)
            #expect(try control.status().pid == 0)
        }
    }

    /// Under auditd: contidd runs as its plugin (records on standard input), with the
    /// registration socket, its own host log, and attribution as when it is the daemon.
    @Test func pluginUnderAuditdAttributesEvents() throws {
        try withKernelAuditState { control in
            let daemon = try DaemonHarness(rules: "")
            try write("-w \(daemon.root)/w -p wa -k \(Self.key)\n", to: daemon.rulesDir + "/10-test.rules")
            let config = daemon.root + "/contidd.conf"
            try write("""
                source = plugin
                log_dir = \(daemon.logDir)
                run_dir = \(daemon.runDir)
                state_dir = \(daemon.stateDir)
                rules_dir = \(daemon.rulesDir)

                """, to: config)
            let auditd = try AuditdHarness(root: daemon.root, plugin: (daemon.contidd, "--config \(config)"))
            // auditd does not wait for its plugin when it stops: as a subreaper this test
            // inherits the plugin then and reaps it, leaving no zombie behind.
            try ChildSubreaper.set(true)
            defer { try? ChildSubreaper.set(false) }
            try auditd.start()
            defer { try? auditd.stop() }
            // auditd starts the plugin; wait for its socket.
            waitUntil { (try? daemon.request(.status)) != nil }
            #expect(try daemon.request(.status).isEmpty == false)
            let child = try Self.registerAndWrite(daemon, id: "6161")
            #expect(try Self.setRecords(daemon).first?.hasPrefix("op=set opid=\(child) contid=6161 old-contid=-1 ") == true)
            // auditd stops its plugin on SIGTERM; contidd removes its rules on the way out.
            try auditd.stop()
            #expect(try waitUntil { try control.listRules().isEmpty })
            // The plugin exited; it was handed to this test (the subreaper) to be reaped.
            let plugins = try runCapturing(["/usr/bin/pgrep", "-x", "-P", "\(getpid())", "contidd"]).output.split(separator: "\n")
            for p in plugins {
                let pid = pid_t(p)!
                var status: Int32 = 0
                #expect(waitpid(pid, &status, 0) == pid, "contidd \(pid) is not a child to reap")
                #expect(status & 0x7f == 0, "contidd \(pid) was killed by signal \(status & 0x7f)")
            }
            #expect(try runCapturing(["/usr/bin/pgrep", "-x", "-P", "\(getpid())", "contidd"]).output == "")
        }
    }
}

extension DaemonTests {
    /// Starts a child that waits, registers it with `id` through `contid set`, lets it write
    /// to the watched directory, and checks that the write is in the host log with its chain.
    /// Returns the child's pid.
    @discardableResult
    static func registerAndWrite(_ daemon: DaemonHarness, id: String) throws -> String {
        try makeFifo(daemon.root + "/go")
        let out = try daemon.shell("""
            busybox sh -c 'read x < $D/go; : >> $D/w/file' & c=$!
            echo "c=$c"
            $CONTID set $c \(id); echo "rc=$?"
            echo go > $D/go
            wait
            """)
        let v = values(out)
        #expect(v["rc"] == "0", "\(out)")
        let child = try #require(v["c"])
        try daemon.waitForLog { events in events.contains { $0.key == key } }
        let write = try #require(try daemon.events().first { $0.key == key })
        #expect(write.pid.map(String.init) == child)
        #expect(write.chain == id)
        return child
    }
}
