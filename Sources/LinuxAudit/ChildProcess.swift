#if os(Linux)
import Glibc
import SystemPackage

/// Processes contidd starts (the proc connector's test child) and asks about.
public enum ChildProcess {
    /// posix_spawn of an absolute path with `argv`; returns the child's pid.
    public static func spawn(_ path: String, _ argv: [String]) throws -> pid_t {
        var pid: pid_t = 0
        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        let rc = posix_spawn(&pid, path, nil, nil, &cArgs, environ)
        guard rc == 0 else { throw LinuxAuditError.syscall("posix_spawn(\(path))", Errno(rawValue: rc)) }
        return pid
    }

    /// Waits for a child; returns its raw wait status.
    @discardableResult
    public static func wait(_ pid: pid_t) throws -> Int32 {
        var status: Int32 = 0
        try Syscall.retrying("waitpid(\(pid))") { waitpid(pid, &status, 0) }
        return status
    }

    /// Whether a process with this pid exists (kill(pid, 0); EPERM means it does).
    public static func exists(_ pid: pid_t) -> Bool {
        do {
            try Syscall.retrying("kill(\(pid), 0)") { kill(pid, 0) }
            return true
        } catch LinuxAuditError.syscall(_, let e) {
            return e == .notPermitted
        } catch {
            return false
        }
    }
}
#endif
