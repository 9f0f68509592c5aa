// contidd's configuration file (docs/contidd.conf.md): `key = value` lines,
// `#` comments. Every key has a default; command-line flags override the file.

/// Where contidd reads the kernel's records from (SPEC §8).
public enum AuditSource: String, CaseIterable, Sendable {
    /// netlink unless an audit daemon is registered, then multicast.
    case auto
    /// contidd is the audit daemon.
    case netlink
    /// Read-only beside a running auditd (multicast group 1).
    case multicast
    /// Run by auditd as a plugin: records on standard input.
    case plugin
}

public struct DaemonConfiguration: Equatable, Sendable {
    public var source: AuditSource = .auto
    public var logDirectory = "/var/log/contid"
    public var runDirectory = "/run/contid"
    public var stateDirectory = "/var/lib/contid"
    public var rulesDirectory = "/etc/contid/rules.d"
    public var logFormat: HostLogFormat = .raw
    /// Megabytes; 0 never rotates.
    public var maxLogFileMB = 8
    public var numLogs = 5
    public var flush: HostLogFlush = .incrementalAsync
    public var frequency = 50
    /// The kernel's backlog_limit while contidd runs (0 leaves it as found).
    public var backlogLimit: UInt32 = 8192
    /// How long a process's container outlives its exit, waiting for its last records.
    public var graceMilliseconds = 2000
    /// Seconds between periodic registry snapshots (0: only after registrations and drops).
    public var snapshotInterval = 5
    /// After a read that found records, wait this long before the next one so that records
    /// arrive in batches: far fewer wakeups and syscalls at the cost of a few ms of latency.
    public var batchMilliseconds = 4
    /// Seconds between loss reports on stderr when something was lost.
    public var reportInterval = 60
    /// Mode of the registration socket; 0666 lets unprivileged callers be refused (and recorded) by the checks.
    public var socketMode: UInt32 = 0o666
    /// Which kernel rules contidd adds for its own state (netlink source only).
    public var trackingRules: TrackingRules = .namespaces
    /// A JSON-lines copy of the host log's events with their chains and labels (nil: none).
    public var jsonLog: String?
    /// Our record types in the log by name (CONTAINER_OP) or as UNKNOWN[2900], for stock ausearch/aureport.
    public var recordTypeNames: OwnTypeForm = .name

    public init() {}

    public static let defaultPath = "/etc/contid/contidd.conf"

    /// The keys and what they take, for errors and docs.
    public static let keys: [String] = [
        "source", "log_dir", "run_dir", "state_dir", "rules_dir", "log_format", "max_log_file", "num_logs",
        "flush", "freq", "backlog_limit", "grace_ms", "snapshot_interval", "batch_ms", "report_interval", "socket_mode",
        "tracking_rules", "json_log", "record_type_names",
    ]

    /// Applies a configuration file's text over the current values. All bad lines are
    /// reported (`FILE:LINE: what is wrong`); good ones still apply.
    public mutating func apply(_ text: String, file: String) -> [ConfigurationError] {
        var errors: [ConfigurationError] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                errors.append(ConfigurationError(file: file, line: i + 1, reason: "expected KEY = VALUE, got \"\(trimmed)\""))
                continue
            }
            let key = trimmed[..<eq].trimmingCharacters
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters
            do {
                try set(key, value)
            } catch {
                errors.append(ConfigurationError(file: file, line: i + 1, reason: error.reason))
            }
        }
        return errors
    }

    public struct ValueError: Error { public var reason: String }

    /// Sets one key (also used for command-line overrides).
    public mutating func set(_ key: String, _ value: String) throws(ValueError) {
        func oneOf<T: RawRepresentable & CaseIterable>(_ type: T.Type) throws(ValueError) -> T where T.RawValue == String {
            if let v = T(rawValue: value.lowercased()) { return v }
            throw ValueError(reason: "\(key) is one of \(T.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(value)\"")
        }
        func number(_ range: ClosedRange<Int>) throws(ValueError) -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw ValueError(reason: "\(key) takes a number from \(range.lowerBound) to \(range.upperBound), not \"\(value)\"")
            }
            return n
        }
        func path() throws(ValueError) -> String {
            guard value.hasPrefix("/") else { throw ValueError(reason: "\(key) takes an absolute path, not \"\(value)\"") }
            return value
        }
        switch key {
        case "source": source = try oneOf(AuditSource.self)
        case "log_dir": logDirectory = try path()
        case "run_dir": runDirectory = try path()
        case "state_dir": stateDirectory = try path()
        case "rules_dir": rulesDirectory = try path()
        case "log_format": logFormat = try oneOf(HostLogFormat.self)
        case "max_log_file": maxLogFileMB = try number(0...1_000_000)
        case "num_logs": numLogs = try number(1...999)
        case "flush": flush = try oneOf(HostLogFlush.self)
        case "freq": frequency = try number(1...1_000_000)
        case "backlog_limit": backlogLimit = UInt32(try number(0...Int(Int32.max)))
        case "grace_ms": graceMilliseconds = try number(0...600_000)
        case "snapshot_interval": snapshotInterval = try number(0...86_400)
        case "batch_ms": batchMilliseconds = try number(0...100)
        case "report_interval": reportInterval = try number(0...86_400)
        case "tracking_rules": trackingRules = try oneOf(TrackingRules.self)
        case "json_log": jsonLog = value.isEmpty || value == "none" ? nil : try path()
        case "record_type_names": recordTypeNames = try oneOf(OwnTypeForm.self)
        case "socket_mode":
            guard let m = UInt32(value, radix: 8), m <= 0o777 else {
                throw ValueError(reason: "socket_mode takes an octal mode such as 0666, not \"\(value)\"")
            }
            socketMode = m
        default:
            var reason = "unknown key \"\(key)\""
            if let s = RuleParser.suggestion(for: key, among: Self.keys) { reason += "; did you mean \"\(s)\"?" }
            throw ValueError(reason: reason)
        }
    }
}

/// The kernel rules contidd adds for its own state when it is the audit daemon.
/// Process facts come from the proc connector (exact at fork, drained before every
/// batch of records), so rules on fork, exec and exit would only cost the host: the
/// kernel builds a record for every process created.
public enum TrackingRules: String, CaseIterable, Sendable {
    /// None: the proc connector and /proc alone.
    case none
    /// unshare and setns (rare calls; the namespace facts that no other source gives).
    case namespaces
    /// fork, clone, vfork, clone3, execve, execveat, exit_group, unshare, setns: every
    /// process's life in the audit stream too (costly; as contidd did before).
    case all
}

/// A configuration line contidd cannot use: `/etc/contid/contidd.conf:3: unknown key "log_dri"; did you mean "log_dir"?`
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var reason: String
    public var description: String { "\(file):\(line): \(reason)" }
}

extension StringProtocol {
    var trimmingCharacters: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
