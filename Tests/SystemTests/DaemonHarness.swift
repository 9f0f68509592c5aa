import AuditCodec
import AuditPipeline
import Glibc
import LinuxAudit
import SystemPackage
import Testing

/// One contidd started from the built binary with its own temporary log, run,
/// state and rules directories; stopped with SIGTERM (or killed) by the test.
final class DaemonHarness {
    let root: String
    let logDir: String
    let runDir: String
    let stateDir: String
    let rulesDir: String
    let contidd: String
    let contid: String
    private(set) var pid: pid_t = 0
    private var starts = 0

    /// `rules` is the text of `rules.d/10-test.rules`.
    init(rules: String, extraArguments: [String] = []) throws {
        let built: String
        (contidd, built) = try Self.binaries()
        var template = Array("/tmp/contid-daemon-test-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LinuxAuditError.syscall("mkdtemp", Errno(rawValue: errno))
        }
        root = String(cString: made)
        chmod(root, 0o755)  // unprivileged test users reach the socket and the fifos
        // contid runs as unprivileged users too, who may not reach the build folder
        // (a checkout under a 0700 directory): they get a copy here.
        contid = root + "/contid"
        try write(bytes: try readAll(built), to: contid)
        logDir = root + "/log"
        runDir = root + "/run"
        stateDir = root + "/state"
        rulesDir = root + "/rules.d"
        mkdir(rulesDir, 0o755)
        mkdir(root + "/w", 0o755)  // a watched directory for the tests' rules, made before the rules load
        try write("", to: root + "/w/file")
        try write(rules, to: rulesDir + "/10-test.rules")
        self.extraArguments = extraArguments
    }

    let extraArguments: [String]
    /// The text of the daemon's contidd.conf (empty: the built-in defaults).
    var configText = ""
    /// `--source` for start(): netlink (contidd is the audit daemon) or multicast (beside auditd).
    var source = "netlink"

    deinit {
        if pid > 0 {
            kill(pid, SIGKILL)
            _ = try? waitChild(pid)
        }
        _ = try? runClean(["/bin/rm", "-rf", root])
    }

    /// contidd and contid next to the test bundle (`swift test` builds them), else in the package's build dirs.
    static func binaries() throws -> (String, String) {
        var dirs: [String] = []
        if let d = getenv("CONTID_TEST_BIN_DIR") { dirs.append(String(cString: d)) }
        let exe = realPath("/proc/self/exe")
        if let slash = exe.lastIndex(of: "/") { dirs.append(String(exe[..<slash])) }
        let here = #filePath
        let parts = here.split(separator: "/", omittingEmptySubsequences: false)
        if parts.count > 3 {
            let package = parts.dropLast(3).joined(separator: "/")  // .../Tests/SystemTests/DaemonHarness.swift
            dirs += [".build-daemon", ".build"].map { "\(package)/\($0)/debug" }
        }
        for d in dirs where access("\(d)/contidd", X_OK) == 0 && access("\(d)/contid", X_OK) == 0 {
            return ("\(d)/contidd", "\(d)/contid")
        }
        throw SystemTestPrecondition(description: "contidd/contid not built (looked in \(dirs)); run swift build first")
    }

    /// Starts contidd and waits until it answers on its socket.
    func start() throws {
        starts += 1
        let err = "\(root)/contidd.stderr"
        let config = root + "/contidd.conf"
        try write(configText, to: config)
        pid = try spawnRedirected([contidd, "--source", source, "--config", config, "--log-dir", logDir,
                                   "--run-dir", runDir, "--state-dir", stateDir, "--rules-dir", rulesDir] + extraArguments,
                                  output: err)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(20)
        while clock.now < deadline {
            if (try? request(.status)) != nil { return }
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                pid = 0
                throw SystemTestPrecondition(description: "contidd exited at start (status \(status)): \(stderrText)")
            }
            usleep(50_000)
        }
        throw SystemTestPrecondition(description: "contidd did not answer within 20 s: \(stderrText)")
    }

    /// SIGTERM and wait; returns the exit status (0 for a clean stop).
    @discardableResult
    func stop() throws -> Int32 {
        guard pid > 0 else { return -1 }
        kill(pid, SIGTERM)
        let status = try waitChild(pid)
        pid = 0
        return status
    }

    /// SIGKILL: no clean-up at all.
    func killHard() throws {
        guard pid > 0 else { return }
        kill(pid, SIGKILL)
        _ = try waitChild(pid)
        pid = 0
    }

    var stderrText: String { String(decoding: (try? readAll("\(root)/contidd.stderr")) ?? [], as: UTF8.self) }

    /// One request over the socket as this test process (the writer is the test itself).
    func request(_ r: RegistrationRequest) throws -> [RegistrationReply] {
        let c = try UnixConnection.connect(path: runDir + "/contid.sock")
        try c.send(r.encoded())
        var replies: [RegistrationReply] = []
        while let m = try c.receive(maxLength: 1 << 16, timeout: .seconds(30)) {
            let reply = try RegistrationReply.decode(m)
            replies.append(reply)
            if case .row = reply { continue }
            break
        }
        return replies
    }

    /// Connections to the registration socket that contidd has not closed: accepted or
    /// waiting to be (the kernel names them by the listener's path, /proc/net/unix).
    var openConnections: Int {
        let socket = runDir + "/contid.sock"
        return completeLines("/proc/net/unix").filter { line in
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            return f.count == 8 && f[7] == socket && f[5] == "03"  // St 03: connected (01: the listener)
        }.count
    }

    /// The daemon's counters as a dictionary (`kernel_lost` → "0").
    func status() throws -> [String: Int] {
        guard case .ok(let line)? = try request(.status).last else { return [:] }
        var out: [String: Int] = [:]
        for part in line.split(separator: " ") {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2, let v = Int(kv[1]) { out[String(kv[0])] = v }
        }
        return out
    }

    /// Runs a /bin/sh script with CONTID (the CLI) and CONTID_RUN_DIR set; stdout and stderr
    /// together. A script still running after `limit` is killed, with what it ran, and fails the test.
    func shell(_ script: String, within limit: Duration = .seconds(120)) throws -> String {
        let path = "\(root)/script-\(UInt32.random(in: 0...UInt32.max)).sh"
        try write("export CONTID=\(contid) CONTID_RUN_DIR=\(runDir) D=\(root)\n" + script, to: path)
        defer { unlink(path) }
        return try runClean(["/bin/sh", path], within: limit).output
    }

    // MARK: the host log

    /// The host log's complete lines, rotated files first (audit.log.N ... audit.log.1, audit.log).
    var logLines: [String] {
        var files = [logDir + "/audit.log"]
        var k = 1
        while access("\(logDir)/audit.log.\(k)", F_OK) == 0 {
            files.insert("\(logDir)/audit.log.\(k)", at: 0)
            k += 1
        }
        return files.flatMap(completeLines)
    }

    /// How many rotated files exist (audit.log.1 ...).
    var rotatedFiles: Int {
        var k = 0
        while access("\(logDir)/audit.log.\(k + 1)", F_OK) == 0 { k += 1 }
        return k
    }

    /// The log's records grouped by serial, in file order.
    func events() throws -> [LoggedEvent] {
        var order: [UInt32] = []
        var bySerial: [UInt32: [AuditRecord]] = [:]
        for line in logLines {
            let r = try AuditRecord(parsing: line)
            if bySerial[r.serial] == nil { order.append(r.serial) }
            bySerial[r.serial, default: []].append(r)
        }
        return order.map { LoggedEvent(serial: $0, records: bySerial[$0]!) }
    }

    /// Waits until `ready` holds for the log (or the time is up); returns whether it did.
    @discardableResult
    func waitForLog(within limit: Duration = .seconds(20), _ ready: ([LoggedEvent]) -> Bool) throws -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now + limit
        while clock.now < deadline {
            if ready(try events()) { return true }
            usleep(100_000)
        }
        return ready(try events())
    }
}

struct LoggedEvent {
    var serial: UInt32
    var records: [AuditRecord]
    var syscall: AuditRecord? { records.first { $0.type == .syscall } }
    var containerIDs: [AuditRecord] { records.filter { $0.type == .containerID } }
    /// The chain of the CONTAINER_ID linked with record=1, nil when there is none.
    var chain: String? { containerIDs.first { $0["record"] == "1" }?["contid"] }
    var key: String? { syscall?.key }
    var pid: Int32? { syscall?.pid }
    var path: String? { records.first { $0.type == .path }?.field("name")?.decodedString }
}

// MARK: - helpers

func write(_ text: String, to path: String) throws {
    try write(bytes: Array(text.utf8), to: path)
}

func write(bytes: [UInt8], to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
    guard fd >= 0 else { throw LinuxAuditError.syscall("open(\(path))", Errno(rawValue: errno)) }
    defer { close(fd) }
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, bytes.count - off) }
        guard n > 0 else { throw LinuxAuditError.syscall("write(\(path))", Errno(rawValue: errno)) }
        off += n
    }
}

/// The lines of a file another process is appending to: a last line without its
/// newline is not all written yet and is left out. No file: no lines.
func completeLines(_ path: String) -> [String] {
    var bytes = (try? readAll(path)) ?? []
    bytes.removeSubrange((bytes.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0)...)
    return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map(String.init)
}

func readAll(_ path: String) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LinuxAuditError.syscall("open(\(path))", Errno(rawValue: errno)) }
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = read(fd, &chunk, chunk.count)
        if n <= 0 { break }
        out += chunk[..<n]
    }
    return out
}

/// posix_spawn with stdin from /dev/null and stdout+stderr appended to `output`
/// (or to a pipe, when `output` is nil, whose read end is returned too), in a process
/// group of its own with `ownProcessGroup`. The
/// child starts with no signal blocked and default dispositions: the test
/// runner's threads block signals, and a spawned shell would inherit that mask.
@discardableResult
func spawnRedirected(_ argv: [String], output: String?, pipeOut: UnsafeMutablePointer<Int32>? = nil,
                     ownProcessGroup: Bool = false) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    var fds: [Int32] = [-1, -1]
    if let output {
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    } else {
        guard pipe(&fds) == 0 else { throw LinuxAuditError.syscall("pipe", Errno(rawValue: errno)) }
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
    }
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for s in [SIGTERM, SIGINT, SIGPIPE, SIGHUP, SIGCHLD] { sigaddset(&defaults, s) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (ownProcessGroup ? POSIX_SPAWN_SETPGROUP : 0)))
    var pid: pid_t = 0
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, environ)
    if output == nil {
        close(fds[1])
        if rc == 0 { pipeOut?.pointee = fds[0] } else { close(fds[0]) }
    }
    guard rc == 0 else { throw LinuxAuditError.syscall("posix_spawn(\(argv[0]))", Errno(rawValue: rc)) }
    return pid
}

/// Runs a program (clean signal mask) and returns its output (stdout and stderr) and wait
/// status. It runs in a process group of its own: when its output has not ended within
/// `limit` (every process holding it has exited), the group is killed and this throws.
func runClean(_ argv: [String], within limit: Duration = .seconds(120)) throws -> (output: String, status: Int32) {
    var fd: Int32 = -1
    let pid = try spawnRedirected(argv, output: nil, pipeOut: &fd, ownProcessGroup: true)
    defer { close(fd) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while true {
        let left = deadline - clock.now
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let ready = left > .zero ? poll(&p, 1, Int32(max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))) : 0
        if ready < 0 && errno == EINTR { continue }
        if ready == 0 {
            kill(-pid, SIGKILL)
            _ = try? waitChild(pid)
            throw SystemTestPrecondition(description: "\(argv) did not finish within \(limit); killed. Its output: \(String(decoding: out, as: UTF8.self))")
        }
        let n = read(fd, &chunk, chunk.count)
        if n > 0 { out += chunk[..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    return (String(decoding: out, as: UTF8.self), try waitChild(pid))
}

/// A fifo at `path` (mkfifo), for processes that wait to be registered.
func makeFifo(_ path: String) throws {
    guard mkfifo(path, 0o666) == 0 else { throw LinuxAuditError.syscall("mkfifo(\(path))", Errno(rawValue: errno)) }
    chmod(path, 0o666)
}

/// Opens the fifo for writing (its reader is waiting) and writes a line.
func release(_ fifo: String) throws {
    let fd = open(fifo, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { throw LinuxAuditError.syscall("open(\(fifo))", Errno(rawValue: errno)) }
    _ = Glibc.write(fd, "go\n", 3)
    close(fd)
}

/// The audit loginuid and sessionid this test runs with (inherited by its children, so in their records).
func ownLoginIDs() -> (auid: String, ses: String) {
    func value(_ p: String) -> String {
        String(decoding: (try? readAll(p)) ?? [], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "?"
    }
    return (value("/proc/self/loginuid"), value("/proc/self/sessionid"))
}

/// Runs the body against a fresh contidd (rules from `rules(root)`, the daemon's
/// temporary directory) under the audit lock; afterwards the kernel must be as
/// found: the same rules (none), status unchanged, no contidd left.
/// `config`: contidd.conf's text, given the test's root directory.
func withDaemon(rules: (String) -> String, config: (String) -> String = { _ in "" },
                _ body: (DaemonHarness, AuditNetlink) throws -> Void) throws {
    try withKernelAuditState { control in
        let before = try control.status()
        let rulesBefore = try control.listRules()
        let daemon = try DaemonHarness(rules: "")
        try write(rules(daemon.root), to: daemon.rulesDir + "/10-test.rules")
        daemon.configText = config(daemon.root)
        try daemon.start()
        do {
            try body(daemon, control)
        } catch {
            _ = try? daemon.stop()  // before the kernel state is checked and restored
            throw error
        }
        if daemon.pid > 0 {
            let status = try daemon.stop()
            #expect(status == 0, "contidd did not stop cleanly: \(daemon.stderrText)")
        }
        let after = try control.status()
        #expect(after.enabled == before.enabled)
        #expect(after.pid == before.pid)
        #expect(after.backlogLimit == before.backlogLimit)
        #expect(try control.listRules() == rulesBefore)
        if rulesBefore.isEmpty { #expect(try runCapturing(["/usr/sbin/auditctl", "-l"]).output == "No rules\n") }
        // Ours only: another engineer's contidd (a benchmark, scripts/run) is none of this test's business.
        #expect(try runCapturing(["/usr/bin/pgrep", "-x", "-P", "\(getpid())", "contidd"]).output == "")
        #expect(access(daemon.stateDir + "/kernel.state", F_OK) != 0, "kernel.state left behind after a clean stop")
    }
}
