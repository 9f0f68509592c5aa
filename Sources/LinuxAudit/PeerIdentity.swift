#if os(Linux)
import CAuditLinux
import Glibc
import SystemPackage

/// SO_PEERCRED of a connected AF_UNIX socket: who connect()ed (or called socketpair).
public struct PeerCredentials: Sendable, Equatable {
    public var pid: pid_t
    public var uid: uid_t
    public var gid: gid_t
    public init(pid: pid_t, uid: uid_t, gid: gid_t) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }
}

/// A process held by a pidfd. The pid alone can be recycled; the pidfd tells whether
/// *this* process has exited, so a /proc read followed by `isAlive == true` is known
/// to be about it.
public final class PinnedProcess: Sendable {
    public let pid: pid_t
    public let descriptor: FileDescriptor

    /// pidfd_open(pid). Racy by nature (the pid may already name another process);
    /// prefer a pidfd from the kernel such as SO_PEERPIDFD.
    public convenience init(pid: pid_t) throws {
        self.init(pid: pid, descriptor: try Syscall.pidfdOpen(pid))
    }

    /// Takes ownership of `descriptor`, a pidfd for `pid`.
    public init(pid: pid_t, descriptor: FileDescriptor) {
        self.pid = pid
        self.descriptor = descriptor
    }

    deinit { try? descriptor.close() }

    /// A pidfd another process sent (SCM_RIGHTS), taking ownership of it: its pid in
    /// this process's pid namespace comes from /proc/self/fdinfo ("Pid:"). Throws
    /// ESRCH when the process has been reaped (-1) or is outside this namespace (0),
    /// EBADF when the descriptor is not a pidfd.
    public static func received(_ descriptor: FileDescriptor) throws -> PinnedProcess {
        let pid: pid_t?
        do { pid = try Self.pid(ofPidfd: descriptor) } catch {
            try? descriptor.close()
            throw error
        }
        guard let pid else {
            try? descriptor.close()
            throw LinuxAuditError.syscall("descriptor \(descriptor.rawValue) sent as a pidfd is not one (no Pid: in its fdinfo)", .badFileDescriptor)
        }
        guard pid > 0 else {
            try? descriptor.close()
            throw LinuxAuditError.syscall(pid == 0 ? "pidfd of a process outside contidd's pid namespace" : "pidfd of a process that exited",
                                          .noSuchProcess)
        }
        return PinnedProcess(pid: pid, descriptor: descriptor)
    }

    /// The pid the kernel associates with a pidfd (/proc/self/fdinfo "Pid:"), -1 once
    /// the process has been reaped, nil if the kernel does not say.
    public static func pid(ofPidfd fd: FileDescriptor) throws -> pid_t? {
        let text = String(decoding: try ProcFS().read("/proc/self/fdinfo/\(fd.rawValue)"), as: UTF8.self)
        for line in text.split(separator: "\n") where line.hasPrefix("Pid:") {
            return pid_t(String(line.dropFirst(4)).trimmingSpaces)
        }
        return nil
    }

    /// False once the process has exited (even while still a zombie): the pidfd
    /// polls readable then.
    public var isAlive: Bool {
        get throws { try Syscall.poll(descriptor, events: Int16(POLLIN), timeout: .zero, "pidfd \(pid)") & Int16(POLLIN) == 0 }
    }

    /// pidfd_send_signal; signal 0 only checks that the process exists (zombies pass).
    public func signal(_ signal: Int32) throws {
        try Syscall.pidfdSendSignal(descriptor, signal, "pidfd \(pid)")
    }

    /// Runs `body` with the pid, then checks that the process is still alive, so that
    /// what `body` read cannot be about a recycled pid. Throws ESRCH otherwise.
    public func verified<T>(_ body: (pid_t) throws -> T) throws -> T {
        let value = try body(pid)
        guard try isAlive else { throw LinuxAuditError.syscall("verify pidfd of \(pid)", .noSuchProcess) }
        return value
    }

    /// The process's real parent (PPid of /proc/PID/status), verified against the pin.
    public func parentPID(source: some ProcessSource = ProcFS()) throws -> pid_t {
        try verified { try source.status(pid: $0).ppid }
    }

    /// Whether the kernel says `parent` is this process's real parent. Pin the parent
    /// too (and check it afterwards) if its pid could be recycled.
    public func isChild(of parent: pid_t, source: some ProcessSource = ProcFS()) throws -> Bool {
        try parentPID(source: source) == parent
    }

    /// Effective capabilities, verified against the pin.
    public func effectiveCapabilities(source: some ProcessSource = ProcFS()) throws -> UInt64 {
        try verified { try source.status(pid: $0).capEff }
    }

    /// The user-namespace inode, verified against the pin.
    public func userNamespace(source: some ProcessSource = ProcFS()) throws -> UInt64 {
        try verified { try source.userNamespace(pid: $0) }
    }

    /// (pid, start time): the identity that survives pid reuse, verified against the pin.
    public func startTime(source: some ProcessSource = ProcFS()) throws -> UInt64 {
        try verified { try source.stat(pid: $0).startTime }
    }
}

/// Who is on the other end of a connected AF_UNIX socket, from the kernel only.
public struct PeerIdentity: Sendable {
    public var credentials: PeerCredentials
    public var process: PinnedProcess

    /// SO_PEERCRED plus SO_PEERPIDFD (Linux >= 6.5), whose pidfd the kernel took at
    /// connect() time. Older kernels fall back to pidfd_open(pid), which can race
    /// with pid reuse. Throws ESRCH if the peer has already been reaped.
    public static func of(socket: FileDescriptor) throws -> PeerIdentity {
        let credentials = try peerCredentials(of: socket)
        var fd: Int32 = -1
        let pidfd: FileDescriptor
        do {
            try Syscall.getOption(socket, SOL_SOCKET, CAUDIT_SO_PEERPIDFD, into: &fd, "SO_PEERPIDFD")
            pidfd = FileDescriptor(rawValue: fd)
        } catch LinuxAuditError.syscall(_, let e) where e == .protocolNotAvailable {
            pidfd = try Syscall.pidfdOpen(credentials.pid)
        }
        let pinned = PinnedProcess(pid: credentials.pid, descriptor: pidfd)
        if let pid = try PinnedProcess.pid(ofPidfd: pidfd), pid != credentials.pid {
            throw LinuxAuditError.syscall("SO_PEERPIDFD of peer \(credentials.pid) (pidfd says \(pid))", .noSuchProcess)
        }
        return PeerIdentity(credentials: credentials, process: pinned)
    }

    public static func peerCredentials(of socket: FileDescriptor) throws -> PeerCredentials {
        var raw: (Int32, UInt32, UInt32) = (0, 0, 0)  // struct ucred
        try Syscall.getOption(socket, SOL_SOCKET, CAUDIT_SO_PEERCRED, into: &raw, "SO_PEERCRED")
        return PeerCredentials(pid: raw.0, uid: raw.1, gid: raw.2)
    }
}
#endif

/// This process as a reaper of orphans (PR_SET_CHILD_SUBREAPER): descendants whose
/// parent exits are reparented here instead of to init, so they can be waited for.
public enum ChildSubreaper {
    public static func set(_ on: Bool) throws {
        guard caudit_set_child_subreaper(on ? 1 : 0) == 0 else {
            throw LinuxAuditError.syscall("prctl(PR_SET_CHILD_SUBREAPER)", Errno(rawValue: errno))
        }
    }
}
