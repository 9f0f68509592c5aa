import AuditCodec
import Glibc
import LinuxAudit
import SystemPackage
import Testing

/// A failed precondition of the system tests (not root, no audit, auditd running):
/// the tests fail with this message rather than skip.
struct SystemTestPrecondition: Error, CustomStringConvertible {
    var description: String
}

func requireRoot() throws {
    guard geteuid() == 0 else {
        throw SystemTestPrecondition(description: "SystemTests must run as root (euid is \(geteuid())): they use the kernel audit subsystem, the proc connector and pidfds")
    }
}

// MARK: - child processes

/// posix_spawn of an absolute path; returns the child's pid.
func spawn(_ argv: [String]) throws -> pid_t {
    var pid: pid_t = 0
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    let rc = posix_spawn(&pid, argv[0], nil, nil, &cArgs, environ)
    guard rc == 0 else { throw LinuxAuditError.syscall("posix_spawn(\(argv[0]))", Errno(rawValue: rc)) }
    return pid
}

/// waitpid for one child; returns the raw wait status.
@discardableResult
func waitChild(_ pid: pid_t) throws -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        let e = Errno(rawValue: errno)
        if e != .interrupted { throw LinuxAuditError.syscall("waitpid(\(pid))", e) }
    }
    return status
}

/// The calling thread's id, from /proc/thread-self -> "PID/task/TID".
func currentThreadID() -> pid_t {
    var buf = [CChar](repeating: 0, count: 64)
    let n = readlink("/proc/thread-self", &buf, buf.count - 1)
    let link = String(decoding: buf[..<max(n, 0)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return pid_t(link.split(separator: "/").last ?? "") ?? -1
}

func realPath(_ path: String) -> String {
    guard let p = realpath(path, nil) else { return path }
    defer { free(p) }
    return String(cString: p)
}

/// Checks `condition` every 20 ms until it holds or `limit` passes; returns whether it held.
@discardableResult
func waitUntil(within limit: Duration = .seconds(20), _ condition: () throws -> Bool) rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

// MARK: - audit state

/// Holds the cross-process lock that serialises every test touching kernel audit state.
final class AuditTestLock {
    static let path = "/run/lock/contid-audit-tests.lock"
    let fd: Int32
    init() throws {
        fd = open(Self.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LinuxAuditError.syscall("open(\(Self.path))", Errno(rawValue: errno)) }
        while flock(fd, LOCK_EX) != 0 {
            let e = Errno(rawValue: errno)
            if e != .interrupted { close(fd); throw LinuxAuditError.syscall("flock(\(Self.path))", e) }
        }
    }
    deinit { close(fd) }  // releases the lock
}

/// Runs `body` with the audit lock held and the kernel audit state as found
/// restored afterwards, even when `body` throws: rules added are deleted, rules
/// removed come back, enabled / pid / backlog limit / wait time / rate limit are reset.
func withKernelAuditState(_ body: (AuditNetlink) throws -> Void) throws {
    try requireRoot()
    let lock = try AuditTestLock()
    defer { withExtendedLifetime(lock) {} }
    let control: AuditNetlink
    do {
        control = try AuditNetlink(mode: .unicast)
    } catch {
        throw SystemTestPrecondition(description: "cannot open NETLINK_AUDIT (\(error)): this kernel has no audit support")
    }
    let before = try control.status()
    guard before.enabled != 2 else {
        throw SystemTestPrecondition(description: "audit configuration is locked (enabled=2); reboot to run SystemTests")
    }
    guard before.pid == 0 else {
        throw SystemTestPrecondition(description: "an audit daemon (pid \(before.pid)) is registered; stop auditd before running SystemTests")
    }
    let rulesBefore = try control.listRules()
    defer { restore(control, status: before, rules: rulesBefore) }
    try body(control)
}

private func restore(_ control: AuditNetlink, status before: AuditStatus, rules rulesBefore: [AuditRule]) {
    func attempt(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch { Issue.record("restoring kernel audit state: \(what): \(error)") }
    }
    attempt("rules") {
        let now = try control.listRules()
        for rule in now where !rulesBefore.contains(rule) { try control.deleteRule(rule) }
        for rule in rulesBefore where !now.contains(rule) { try control.addRule(rule) }
    }
    attempt("status") {
        let now = try control.status()
        if now.pid != before.pid && now.pid == UInt32(getpid()) { try control.unregister() }
        if now.backlogLimit != before.backlogLimit { try control.setBacklogLimit(before.backlogLimit) }
        if now.backlogWaitTime != before.backlogWaitTime { try control.setBacklogWaitTime(before.backlogWaitTime) }
        if now.rateLimit != before.rateLimit { try control.setRateLimit(before.rateLimit) }
        if now.enabled != before.enabled, before.enabled <= 1 { try control.setEnabled(before.enabled == 1) }
        if now.failure != before.failure, let mode = AuditFailureMode(rawValue: before.failure) { try control.setFailure(mode) }
    }
}

// MARK: - records

/// The `key=value` fields of a record's text after `audit(...): `; quoted values keep their quotes.
func recordFields(_ text: String) -> [String: String] {
    guard let body = recordBody(text) else { return [:] }
    var fields: [String: String] = [:]
    for part in body.split(separator: " ") {
        guard let eq = part.firstIndex(of: "=") else { continue }
        let key = String(part[..<eq])
        if fields[key] == nil { fields[key] = String(part[part.index(after: eq)...]) }
    }
    return fields
}

/// The text after `audit(SEC.MS:SERIAL): `.
func recordBody(_ text: String) -> String? {
    guard text.hasPrefix("audit("), let close = text.firstIndex(of: ")") else { return nil }
    let rest = text[text.index(after: close)...]
    guard rest.hasPrefix(": ") else { return nil }
    return String(rest.dropFirst(2))
}

/// Reads records from `socket` until `match` returns true for one of them or the
/// deadline passes; returns the text of the matching record.
func awaitRecord(on socket: AuditNetlink, within limit: Duration = .seconds(20),
                 _ match: (UInt16, String) -> Bool) throws -> (type: UInt16, text: String)? {
    let buffer = NetlinkReceiveBuffer()
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    var found: (UInt16, String)?
    while found == nil {
        let left = deadline - clock.now
        if left <= .zero { break }
        try socket.receive(into: buffer, timeout: left) { message in
            guard found == nil else { return }
            let text = String(decoding: message.payload, as: UTF8.self)
            if match(message.type, text) { found = (message.type, text) }
        }
    }
    return found.map { (type: $0.0, text: $0.1) }
}

/// Runs a program and returns its standard output and exit status.
func runCapturing(_ argv: [String]) throws -> (output: String, status: Int32) {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw LinuxAuditError.syscall("pipe", Errno(rawValue: errno)) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    posix_spawn_file_actions_addclose(&actions, fds[0])
    var pid: pid_t = 0
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { for p in cArgs { free(p) } }
    let rc = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, environ)
    close(fds[1])
    defer { close(fds[0]) }
    guard rc == 0 else { throw LinuxAuditError.syscall("posix_spawn(\(argv[0]))", Errno(rawValue: rc)) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = read(fds[0], &chunk, chunk.count)
        if n > 0 { out += chunk[..<n]; continue }
        if n < 0 && errno == EINTR { continue }
        break
    }
    let status = try waitChild(pid)
    return (String(decoding: out, as: UTF8.self), status)
}

/// Reads records from `socket` until `complete` holds for those read so far (or
/// the deadline passes); returns them all. `complete` names exactly the records the
/// caller asserts on: records of one syscall event can arrive after those of another
/// (a vfork parent's clone record follows the child's execve and exit_group).
func collectRecords(on socket: AuditNetlink, within limit: Duration = .seconds(20),
                    until complete: ([(type: UInt16, text: String)]) -> Bool) throws -> [(type: UInt16, text: String)] {
    let buffer = NetlinkReceiveBuffer()
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    var records: [(type: UInt16, text: String)] = []
    while !complete(records) {
        let left = deadline - clock.now
        if left <= .zero { break }
        try socket.receive(into: buffer, timeout: left) { message in
            records.append((message.type, String(decoding: message.payload, as: UTF8.self)))
        }
    }
    return records
}

/// Sends a user message (type 2900) with a text of its own through the kernel and
/// returns that text. The kernel queues records in order and delivers them in that
/// order: a reader that has read the marker has read every record queued before it
/// (what is not there by then never will be, unless the reader counted a gap).
func sendMarker(_ control: AuditNetlink) throws -> String {
    let text = "op=systest-marker n=\(UInt64.random(in: 0...UInt64.max)) res=1"
    try control.sendUserMessage(type: 2900, text: text)
    return text
}

/// Whether `record` is the marker `text` sent by `sendMarker`.
func isMarker(_ record: (type: UInt16, text: String), _ text: String) -> Bool {
    record.type == 2900 && record.text.contains("msg='\(text)'")
}
