import LinuxAudit

/// Why contidd could not start or had to stop, for people: what, and what to do.
public enum DaemonError: Error, CustomStringConvertible {
    /// Another process is registered as the kernel's audit daemon.
    case anotherAuditDaemon(pid: UInt32)
    /// Another contidd holds the state directory's lock.
    case anotherContidd(pid: String, stateDirectory: String)
    /// `auditctl -e 2` was set: rules cannot change until reboot.
    case auditLocked
    /// The proc connector sends nothing, even unfiltered.
    case connectorSilent
    /// The kernel refused a rule of a rules file.
    case ruleRefused(file: String, line: Int, any Error)
    /// A named destination of the config cannot be set up.
    case destinationUnavailable(name: String, reason: String)

    public var description: String {
        switch self {
        case .anotherAuditDaemon(let pid):
            return "another audit daemon is registered (pid \(pid)); stop it or use --source multicast"
        case let .anotherContidd(pid, dir):
            return "another contidd (pid \(pid)) is running with state directory \(dir); stop it first"
        case .auditLocked:
            return "the kernel audit configuration is locked (enabled=2) until reboot; contidd cannot add its rules"
        case .connectorSilent:
            return "the proc connector sends no process events (is contidd in the initial pid and user namespaces?); processes cannot be tracked"
        case let .ruleRefused(file, line, error):
            return "\(file):\(line): the kernel refused the rule: \(error)"
        case let .destinationUnavailable(name, reason):
            return "destination \(name): \(reason)"
        }
    }
}
