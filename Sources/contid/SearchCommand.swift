import ArgumentParser
import AuditCodec
import AuditPipeline
import ContainerEngine
import LinuxAudit

#if canImport(Glibc)
import Glibc
#endif

/// The selection options `search` and `report` share (ausearch's names where it has one).
struct SearchOptions: ParsableArguments {
    @Option(name: .long, help: "Events of this container (decimal or UUID): its CONTAINER_ID records name it innermost.")
    var contid: String?

    @Flag(name: .long, help: "With --contid or --label: also the containers nested in it (its ID anywhere in the chain).")
    var nested = false

    @Option(name: .long, help: "Events of the containers that carried label K=V when the event happened (CONTAINER_INFO: runtime, id, name, image, pod or a user label).")
    var label: String?

    @Option(name: [.customShort("m"), .customLong("message")], parsing: .singleValue,
            help: "Record type, by name or number; repeatable, or a comma list (CONTAINER_OP also finds UNKNOWN[2900]).")
    var types: [String] = []

    @Option(name: [.customShort("k"), .customLong("key")], help: "A key of the event's rules contains this (as ausearch -k).")
    var key: String?

    @Option(name: [.customShort("p"), .customLong("pid")], help: "The event's process id.")
    var pid: UInt64?

    @Option(name: [.customLong("ui", withSingleDash: true), .customLong("uid")], help: "The event's uid.")
    var uid: UInt64?

    @Option(name: [.customLong("ue", withSingleDash: true), .customLong("euid")], help: "The event's effective uid.")
    var euid: UInt64?

    @Option(name: [.customLong("ul", withSingleDash: true), .customLong("auid")], help: "The event's login uid (auid).")
    var auid: UInt64?

    @Option(name: [.customLong("ua", withSingleDash: true), .customLong("any-uid")], help: "uid, euid or auid is this.")
    var anyUID: UInt64?

    @Option(name: [.customShort("x"), .customLong("exe")], help: "The executable's path contains this.")
    var exe: String?

    @Option(name: [.customShort("c"), .customLong("comm")], help: "The command name contains this.")
    var comm: String?

    @Option(name: .long, help: "yes or no: the syscall succeeded (or the user message's res=).")
    var success: String?

    @Option(name: [.customLong("sc", withSingleDash: true), .customLong("syscall")], help: "Syscall by name (x86_64) or number.")
    var syscall: String?

    @Option(name: .long, help: "From this time (inclusive, whole seconds): ISO 8601, epoch seconds, now, recent, boot, today, yesterday, this-week, this-month, this-year.")
    var since: String?

    @Option(name: .long, help: "Up to this time (inclusive, whole seconds); the same forms as --since.")
    var until: String?

    @Option(name: .long, help: "Read the host log in DIR (audit.log and its rotated files, oldest first).")
    var logDir: String?

    @Flag(name: .long, inversion: .prefixedNo, help: "Use a log's sidecar index (FILE.cidx) to skip blocks that cannot match, when it is valid.")
    var index = true

    @Flag(name: .long, inversion: .prefixedNo,
          help: "Report progress (bytes, MB/s, ETA) on standard error. Default: on when standard error is a terminal.")
    var progress: Bool = isatty(2) == 1

    @Flag(name: .long, help: "Print what the scan read on standard error: bytes read and skipped, lines, events, matches.")
    var stats = false

    @Argument(help: "Log files, in order; '-' reads standard input. None: --log-dir, else contidd's configured log directory.")
    var files: [String] = []

    func query() throws -> SearchQuery {
        var q = SearchQuery()
        for t in types.flatMap({ $0.split(separator: ",") }) {
            guard let type = AuditRecordType(name: t) else {
                throw ValidationError("-m \(t): not a record type (a name such as SYSCALL or CONTAINER_OP, or a number)")
            }
            q.types.append(type)
        }
        q.key = key.map { Array($0.utf8) }
        q.pid = pid
        q.uid = uid
        q.euid = euid
        q.auid = auid
        q.anyUID = anyUID
        q.exe = exe.map { Array($0.utf8) }
        q.comm = comm.map { Array($0.utf8) }
        switch success {
        case nil: break
        case "yes": q.success = true
        case "no": q.success = false
        case let s?: throw ValidationError("--success \(s): give yes or no")
        }
        if let syscall {
            if let n = Int(syscall) { q.syscall = n } else if let n = AuditArch.x86_64.syscallNumber(syscall) { q.syscall = n } else {
                throw ValidationError("--syscall \(syscall): not a syscall name of x86_64 or a number")
            }
        }
        let now = UInt64(time(nil))
        let boot = Self.bootTime()
        do {
            if let since { q.since = try SearchTime.parse(since, now: now, boot: boot) }
            if let until { q.until = try SearchTime.parse(until, now: now, boot: boot) }
        } catch {
            throw ValidationError("\(error)")
        }
        if let contid {
            do { q.contid = try ContainerID(parsing: contid) } catch { throw ValidationError("--contid \(contid): \(error)") }
        }
        q.nested = nested
        if let label {
            let kv = label.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--label \(label): give KEY=VALUE") }
            q.label = (String(kv[0]), String(kv[1]))
        }
        return q
    }

    /// The inputs in reading order: the files given, else the log directory's host log, oldest first.
    func inputs() throws -> [String] {
        if !files.isEmpty { return files }
        var dir = logDir
        if dir == nil {
            var conf = DaemonConfiguration()
            if let bytes = try? FileSystem.read(DaemonConfiguration.defaultPath) {
                _ = conf.apply(String(decoding: bytes, as: UTF8.self), file: DaemonConfiguration.defaultPath)
            }
            dir = conf.logDirectory
        }
        let base = dir! + "/audit.log"
        var found: [String] = []
        var k = 1
        while access("\(base).\(k)", R_OK) == 0 { found.insert("\(base).\(k)", at: 0); k += 1 }
        if access(base, R_OK) == 0 { found.append(base) }
        if found.isEmpty { throw ValidationError("no audit.log in \(dir!); give FILE... or --log-dir DIR") }
        return found
    }

    /// The boot time from /proc/stat's btime, for `boot`.
    static func bootTime() -> UInt64? {
        guard let bytes = try? FileSystem.read("/proc/stat") else { return nil }
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(line.dropFirst(6))
        }
        return nil
    }
}

struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Find events in audit logs, as ausearch does, by container, label, type, key, process, user or time.",
        discussion: """
            Every option given must hold for an event; the ausearch options keep ausearch's \
            meanings (-k, --exe and --comm match by substring, -ua any of uid, euid, auid; \
            --since/--until compare whole seconds, both inclusive). --contid and --label use \
            the trail's CONTAINER_ID records; a label belongs to a container from its \
            CONTAINER_INFO record until the ID is dropped, so a reused ID does not inherit it. \
            Records written as UNKNOWN[29xx] are contid's own types too.

            Formats:
              raw          the events' lines, byte for byte as read
              interpreted  as ausearch -i: times, arches, syscalls, users, errnos named, hex decoded
              json         one JSON object per event (node, serial, time, contid, records)

            A line that is not an audit record is reported as FILE:LINE: what is wrong, and skipped. \
            Exits 1 when nothing matched (as ausearch does), 2 on errors reading an input.
            """)

    @OptionGroup var options: SearchOptions

    @Option(name: .long, help: "Output form: raw, interpreted or json.")
    var format: SearchFormatArgument = .raw

    func run() throws {
        let q = try options.query()
        let inputs = try options.inputs()
        let out = StandardOutput()
        let printer = SearchPrinter(format: format.value, output: out)
        let result = try runSearch(query: q, inputs: inputs, options: options, sink: printer, output: out)
        out.flush()
        if result.failed { throw ExitCode(2) }
        if result.matched == 0 { throw ExitCode(1) }
    }
}

/// The scan of `search` and `report` over their inputs: labels resolved first, then each file
/// in order, through its index when one is valid.
func runSearch(query q: SearchQuery, inputs: [String], options: SearchOptions, sink: SearchSink,
               output out: StandardOutput) throws -> (matched: Int, failed: Bool, counters: SearchCounters) {
    var failed = false
    var logs: [String: MappedLog] = [:]
    func open(_ path: String) -> MappedLog? {
        if let l = logs[path] { return l }
        do {
            let l = try MappedLog(path: path)
            if path == "-" { logs[path] = l }
            return l
        } catch {
            out.diagnostic("contid: \(error)")
            failed = true
            return nil
        }
    }
    var selection: ContainerSelection?
    var labelIDs: [[UInt8]] = []
    if let id = q.contid {
        selection = ContainerSelection(spans: [.init(id: id.bytes, from: 0, until: .max)], nested: q.nested)
    }
    if let label = q.label {
        var spans = LabelSpans()
        for path in inputs { if let log = open(path) { spans.read(log) } }
        var found = spans.spans(key: label.key, value: label.value)
        if let existing = selection {  // --contid and --label: both must hold
            found = found.filter { s in existing.spans.contains { $0.id == s.id } }
        }
        selection = ContainerSelection(spans: found, nested: q.nested)
        labelIDs = Array(Set(found.map(\.id)))
    }
    let needles = q.needles(labelIDs: labelIDs)
    let scan = SearchScan(query: q, containers: selection, needles: needles, sink: sink, diagnostic: { out.diagnostic($0) })
    for path in inputs {
        guard let log = open(path) else { continue }
        let meter = options.progress ? ProgressMeter(path: path) : nil
        scan.onProgress = meter.map { m in { m.update(bytes: $0, of: log.bytes.count) } }
        var ranges: [Range<Int>]?
        if options.index, path != "-" {
            ranges = LogIndex.ranges(for: log, query: q, selection: selection, needles: needles, diagnostic: { out.diagnostic($0) })
        }
        if selection != nil, selection!.spans.isEmpty { ranges = [] }
        scan.scan(log, ranges: ranges)
        meter?.finish()
    }
    if options.stats {
        let c = scan.counters
        out.diagnostic("contid: read=\(c.bytes) skipped=\(c.skippedBytes) lines=\(c.lines) events=\(c.events) matched=\(c.matched) errors=\(c.errors)")
    }
    return (scan.counters.matched, failed, scan.counters)
}

enum SearchFormatArgument: String, ExpressibleByArgument, CaseIterable {
    case raw, interpreted, json
    var value: SearchFormat { SearchFormat(rawValue: rawValue)! }
}
