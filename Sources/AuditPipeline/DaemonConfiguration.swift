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
    /// Per-container logs LOGDIR/containers/ID/audit.log (routing's `container` destination).
    public var containerLogs = false
    /// `node=` on every record contidd writes or sends (auditd's `name_format`/`name`).
    public var nodeName: NodeName = .none
    /// Events each reader's queue holds before it drops.
    public var readerQueue = 8192
    /// Prometheus metrics on 127.0.0.1:PORT (0: off).
    public var metricsPort = 0
    /// Where the metrics listen (a loopback address).
    public var metricsAddress = "127.0.0.1"
    /// The named destinations (`[destination NAME]` sections), in file order.
    public var destinations: [DestinationConfiguration] = []

    public init() {}

    /// The names route rules may use besides `host` and `container`.
    public var destinationNames: [String] { destinations.map(\.name) }

    public static let defaultPath = "/etc/contid/contidd.conf"

    /// The keys and what they take, for errors and docs.
    public static let keys: [String] = [
        "source", "log_dir", "run_dir", "state_dir", "rules_dir", "log_format", "max_log_file", "num_logs",
        "flush", "freq", "backlog_limit", "grace_ms", "snapshot_interval", "batch_ms", "report_interval", "socket_mode",
        "tracking_rules", "json_log", "record_type_names", "container_logs", "node_name", "reader_queue",
        "metrics_port", "metrics_address",
    ]

    /// Applies a configuration file's text over the current values. All bad lines are
    /// reported (`FILE:LINE: what is wrong`); good ones still apply.
    public mutating func apply(_ text: String, file: String) -> [ConfigurationError] {
        var errors: [ConfigurationError] = []
        /// The `[destination NAME]` section the lines belong to, as an index into `destinations`.
        var section: Int?
        var sectionStart: [Int: Int] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters
            if trimmed.isEmpty { continue }
            if trimmed.hasPrefix("[") {
                do throws(ValueError) {
                    let name = try DestinationConfiguration.sectionName(trimmed)
                    if destinations.contains(where: { $0.name == name }) {
                        throw ValueError(reason: "destination \"\(name)\" is declared twice")
                    }
                    guard destinations.count < DestinationSet.maxNamed else {
                        throw ValueError(reason: "at most \(DestinationSet.maxNamed) named destinations")
                    }
                    destinations.append(DestinationConfiguration(name: name))
                    section = destinations.count - 1
                    sectionStart[section!] = i + 1
                } catch {
                    errors.append(ConfigurationError(file: file, line: i + 1, reason: error.reason))
                    section = -1  // the lines of a bad section are skipped, not taken as top-level keys
                }
                continue
            }
            guard let eq = trimmed.firstIndex(of: "=") else {
                errors.append(ConfigurationError(file: file, line: i + 1, reason: "expected KEY = VALUE, got \"\(trimmed)\""))
                continue
            }
            let key = trimmed[..<eq].trimmingCharacters
            let value = trimmed[trimmed.index(after: eq)...].trimmingCharacters
            do {
                if let section {
                    if section >= 0 { try destinations[section].set(key, value) }
                } else {
                    try set(key, value)
                }
            } catch {
                errors.append(ConfigurationError(file: file, line: i + 1, reason: error.reason))
            }
        }
        for (index, line) in sectionStart.sorted(by: { $0.key < $1.key }) {
            if let reason = destinations[index].missing {
                errors.append(ConfigurationError(file: file, line: line, reason: reason))
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
        case "container_logs": containerLogs = try yesNo(key, value)
        case "node_name": nodeName = NodeName(value)
        case "reader_queue": readerQueue = try number(16...10_000_000)
        case "metrics_port": metricsPort = try number(0...65_535)
        case "metrics_address":
            guard value == "127.0.0.1" || value == "::1" || value == "localhost" else {
                throw ValueError(reason: "metrics_address is a loopback address (127.0.0.1, ::1), not \"\(value)\"")
            }
            metricsAddress = value == "localhost" ? "127.0.0.1" : value
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

func yesNo(_ key: String, _ value: String) throws(DaemonConfiguration.ValueError) -> Bool {
    switch value.lowercased() {
    case "yes", "true", "on", "1": return true
    case "no", "false", "off", "0": return false
    default: throw DaemonConfiguration.ValueError(reason: "\(key) takes yes or no, not \"\(value)\"")
    }
}

/// `node=` on the records contidd writes or sends, as auditd's `name_format`.
public enum NodeName: Equatable, Sendable {
    /// No node= (auditd's `name_format = none`).
    case none
    /// The machine's host name, read at start (`name_format = hostname`).
    case hostname
    /// A fixed name (`name_format = user`, `name = ...`).
    case fixed(String)

    public init(_ value: String) {
        switch value {
        case "", "none": self = .none
        case "hostname": self = .hostname
        default: self = .fixed(value)
        }
    }
}

/// What a named destination is.
public enum DestinationType: String, CaseIterable, Sendable {
    /// A central auditd over its remote-logging protocol (`address = HOST:PORT`).
    case remote
    /// JSON lines (`path = /abs/file` or `path = -` for standard output).
    case json
    /// A ClickHouse server over HTTP (`url = http://HOST:8123`).
    case clickhouse
}

/// One `[destination NAME]` section of contidd.conf:
///
///     [destination central]
///     type = remote
///     address = 10.0.0.5:60
///     queue = 65536
///     spool_mb = 256
public struct DestinationConfiguration: Equatable, Sendable {
    public var name: String
    public var type: DestinationType?
    /// remote: HOST:PORT.
    public var address: String?
    /// json: an absolute path, or `-` for standard output.
    public var path: String?
    /// clickhouse: the server's HTTP URL.
    public var url: String?
    /// Events its queue holds (in memory) before it spools or drops.
    public var queue = 65_536
    /// remote, clickhouse: the spool on disk under STATE_DIR/spool/NAME, in MiB (0: none).
    public var spoolMB = 256
    /// remote: seconds between heartbeats while idle (0: none).
    public var heartbeat = 30
    /// clickhouse: the table rows go to.
    public var table = "contid.events_local"

    public init(name: String, type: DestinationType? = nil) {
        self.name = name
        self.type = type
    }

    public static let keys = ["type", "address", "path", "url", "queue", "spool_mb", "heartbeat", "table"]

    /// `[destination NAME]` -> NAME.
    static func sectionName(_ line: String) throws(DaemonConfiguration.ValueError) -> String {
        guard line.hasSuffix("]") else { throw .init(reason: "a section is [destination NAME], not \"\(line)\"") }
        let words = line.dropFirst().dropLast().split(separator: " ", omittingEmptySubsequences: true)
        guard words.count == 2, words[0] == "destination" else {
            throw .init(reason: "a section is [destination NAME], not \"\(line)\"")
        }
        let name = String(words[1])
        guard name != "host", name != "container" else { throw .init(reason: "\"\(name)\" is a built-in destination; choose another name") }
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == "." }), name.utf8.count <= 64 else {
            throw .init(reason: "a destination name is letters, digits, '-', '_' and '.' (at most 64), not \"\(name)\"")
        }
        return name
    }

    mutating func set(_ key: String, _ value: String) throws(DaemonConfiguration.ValueError) {
        func number(_ range: ClosedRange<Int>) throws(DaemonConfiguration.ValueError) -> Int {
            guard let n = Int(value), range.contains(n) else {
                throw .init(reason: "\(key) takes a number from \(range.lowerBound) to \(range.upperBound), not \"\(value)\"")
            }
            return n
        }
        switch key {
        case "type":
            guard let t = DestinationType(rawValue: value.lowercased()) else {
                throw .init(reason: "type is one of \(DestinationType.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(value)\"")
            }
            type = t
        case "address":
            guard let colon = value.lastIndex(of: ":"), UInt16(value[value.index(after: colon)...]) != nil, colon != value.startIndex else {
                throw .init(reason: "address takes HOST:PORT, not \"\(value)\"")
            }
            address = value
        case "path":
            guard value == "-" || value.hasPrefix("/") else { throw .init(reason: "path takes an absolute path or -, not \"\(value)\"") }
            path = value
        case "url":
            guard value.hasPrefix("http://") else { throw .init(reason: "url takes http://HOST:PORT, not \"\(value)\"") }
            url = value
        case "queue": queue = try number(16...100_000_000)
        case "spool_mb": spoolMB = try number(0...1_000_000)
        case "heartbeat": heartbeat = try number(0...86_400)
        case "table": table = value
        default:
            var reason = "unknown key \"\(key)\" in [destination \(name)]"
            if let s = RuleParser.suggestion(for: key, among: Self.keys) { reason += "; did you mean \"\(s)\"?" }
            throw .init(reason: reason)
        }
    }

    /// What the section lacks, or nil.
    var missing: String? {
        guard let type else { return "[destination \(name)] needs type = \(DestinationType.allCases.map(\.rawValue).joined(separator: "|"))" }
        switch type {
        case .remote where address == nil: return "[destination \(name)] (remote) needs address = HOST:PORT"
        case .json where path == nil: return "[destination \(name)] (json) needs path = /abs/file or -"
        case .clickhouse where url == nil: return "[destination \(name)] (clickhouse) needs url = http://HOST:8123"
        default: return nil
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
