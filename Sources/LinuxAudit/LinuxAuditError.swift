#if os(Linux)
import SystemPackage

/// What went wrong talking to the kernel: which call or request, and the errno it gave.
public enum LinuxAuditError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed, e.g. `.syscall("bind(NETLINK_AUDIT)", .permissionDenied)`.
    case syscall(String, Errno)
    /// The kernel answered a netlink request with a negative ack, e.g.
    /// `.rejected(request: "AUDIT_ADD_RULE", .fileExists)` for a duplicate rule.
    case rejected(request: String, Errno)
    /// No answer to a netlink request within the deadline.
    case timedOut(request: String)
    /// The kernel (or a /proc file) said something we cannot read.
    case malformed(what: String, reason: String)

    /// The errno behind the failure, if any.
    public var errno: Errno? {
        switch self {
        case .syscall(_, let e), .rejected(_, let e): return e
        case .timedOut, .malformed: return nil
        }
    }

    public var description: String {
        switch self {
        case .syscall(let call, let e): return "\(call) failed: \(e) (errno \(e.rawValue))"
        case .rejected(let request, let e): return "kernel rejected \(request): \(e) (errno \(e.rawValue))"
        case .timedOut(let request): return "no answer from the kernel to \(request)"
        case .malformed(let what, let reason): return "malformed \(what): \(reason)"
        }
    }
}
#endif
