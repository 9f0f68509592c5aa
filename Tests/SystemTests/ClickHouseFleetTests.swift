import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit
import SystemPackage
import Testing

/// The fleet store on real ClickHouse servers (Debian's clickhouse-server, 18.16), two
/// of them on loopback started by scripts/clickhouse-fleet.sh under a temp dir and
/// stopped at the end: `contid ingest` gives exactly the events `contid replay` gives,
/// a server killed mid-ingest loses and duplicates nothing, and ClickHouseQuery's SQL
/// through the Distributed table finds what the files hold.
@Suite(.serialized) struct ClickHouseFleetTests {
    static let package: String = {
        let parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        return parts.dropLast(3).joined(separator: "/")  // .../Tests/SystemTests/ClickHouseFleetTests.swift
    }()
    static let corpus = package + "/../shared/corpus"

    // MARK: the tests

    @Test func ingestOfCorpusAndGeneratedLogsGivesExactlyTheEventsReplayGives() throws {
        let fleet = try Fleet()
        defer { fleet.stop() }
        let generated = fleet.dir + "/gen.log"
        try fleet.sh("python3 \(Self.package)/Benchmarks/container-trail.py \(generated) 20000 --node gen-a --containers 24")
        let logs: [(path: String, host: String)] = [
            (Self.corpus + "/captured-linux-6.18-raw.log", "corpus-raw"),
            (Self.corpus + "/captured-linux-6.18-enriched.log", "corpus-enriched"),
            (Self.corpus + "/audit-userspace/test.log", "corpus-userspace"),
            (generated, "gen-a"),
        ]
        for log in logs {
            let r = try fleet.contid(["ingest", "--clickhouse", fleet.url(1, credentials: true), "--node", log.host, "--batch-rows", "3000", log.path])
            #expect(r.status == 0, "\(r.output)")
            let expected = try fleet.replayed(log.path, host: log.host)
            #expect(expected.count > 0)
            let got = try fleet.rows(1, "SELECT host, serial, arrayStringConcat(chain, ',') FROM contid.events_local FINAL WHERE host = '\(log.host)'")
            #expect(got.count == expected.count, "\(log.path): \(got.count) rows, replay gives \(expected.count) events")
            #expect(Set(got) == Set(expected), "\(log.path): rows differ from replay's events, e.g. \(Set(got).symmetricDifference(Set(expected)).prefix(3))")
        }
        // The generated trail is not trivial: nested chains and labels from CONTAINER_INFO arrived.
        #expect(try fleet.rows(1, "SELECT count() FROM contid.events_local FINAL WHERE host = 'gen-a' AND length(chain) = 2") != ["0"])
        #expect(try fleet.rows(1, "SELECT arrayStringConcat(labels, ' ') FROM contid.events_local FINAL WHERE host = 'gen-a' AND contid = '1005' LIMIT 1")
                == ["runtime=runc id=c0005 name=web-5 image=registry/app:1.2 pod=prod/web-5 team=t2 tier=front"])
        // The raw column holds the event as replay writes it (a SYSCALL with its CONTAINER_ID).
        let raw = try fleet.rows(1, "SELECT raw FROM contid.events_local FINAL WHERE host = 'gen-a' AND contid = '5004' AND key = 'exec' ORDER BY serial LIMIT 1", format: "TabSeparatedRaw")
        #expect(raw.count == 2 && raw[0].contains(" key=\"exec\" record=1") && raw[1].hasSuffix("record=1 contid=5004,^1004"), "\(raw)")
    }

    @Test func aServerKilledMidIngestGetsEveryEventExactlyOnce() throws {
        let fleet = try Fleet()
        defer { fleet.stop() }
        let log = fleet.dir + "/big.log"
        try fleet.sh("python3 \(Self.package)/Benchmarks/container-trail.py \(log) 400000 --node kill-a")
        let summary = try fleet.sh("\(fleet.contidBinary) replay --format summary --no-progress \(log)")
        let events = try #require(summary.split(separator: " ").first { $0.hasPrefix("events=") }.flatMap { Int($0.dropFirst(7)) })
        #expect(events > 400000)
        let spool = fleet.dir + "/spool"
        let output = fleet.dir + "/ingest.out"
        let pid = try spawnRedirected(
            [fleet.contidBinary, "ingest", "--clickhouse", fleet.url(1, credentials: true), "--batch-rows", "5000",
             "--spool-dir", spool, "--retry-for", "120", "--no-progress", log], output: output)
        var exited: Int32?
        defer { if exited == nil { kill(pid, SIGKILL); _ = try? waitChild(pid) } }
        // Kill the server once rows are arriving, while the ingest goes on.
        try fleet.waitFor("rows in the table", within: .seconds(60)) {
            (try? fleet.rows(1, "SELECT count() FROM contid.events_local").first.flatMap { Int($0) } ?? 0) ?? 0 > 0
        }
        try fleet.sh("\(Self.package)/scripts/clickhouse-fleet.sh kill \(fleet.fleetDir) 1")
        try fleet.waitFor("a batch in the spool", within: .seconds(60)) {
            (try? spoolEntries(spool).contains { $0.hasSuffix(".RowBinary") }) ?? false
        }
        try fleet.sh("\(Self.package)/scripts/clickhouse-fleet.sh restart \(fleet.fleetDir) 1")
        exited = try waitChild(pid)
        let text = try fleet.read(output)
        #expect(exited == 0, "\(text)")
        #expect(text.contains("rows_lost=0"), "\(text)")
        #expect(!text.contains(" spooled=0 "), "the fault was not exercised: \(text)")
        let counts = try fleet.rows(1, "SELECT count(), uniqExact(host, serial) FROM contid.events_local FINAL")
        #expect(counts == ["\(events)\t\(events)"], "every event exactly once: \(counts), replay has \(events); \(text)")
        // Duplicates (batches resent after a lost answer) exist only below FINAL.
        let all = try fleet.rows(1, "SELECT count() >= \(events) FROM contid.events_local")
        #expect(all == ["1"])
    }

    @Test func queriesThroughTheDistributedTableFindWhatTheFilesHold() throws {
        let fleet = try Fleet()
        defer { fleet.stop() }
        var files: [(path: String, host: String, shard: Int)] = []
        for (n, host) in ["fleet-a", "fleet-b"].enumerated() {
            let path = fleet.dir + "/\(host).log"
            try fleet.sh("python3 \(Self.package)/Benchmarks/container-trail.py \(path) 30000 --node \(host) --seed \(n + 7) --containers 16")
            files.append((path, host, n + 1))
            // Each host writes to its own shard's local table, as each contidd would.
            let r = try fleet.contid(["ingest", "--clickhouse", fleet.url(n + 1, credentials: true), path])
            #expect(r.status == 0, "\(r.output)")
        }
        // The events as replay gives them, with what the queries select on.
        var events: [ReplayedEvent] = []
        for f in files { events += try fleet.replayedEvents(f.path) }
        // In the order the queries return: time, then host, then serial.
        events.sort { ($0.milliseconds, $0.host, $0.serial) < ($1.milliseconds, $1.host, $1.serial) }
        for shard in [1, 2] {
            let host = files[shard - 1].host
            #expect(try fleet.rows(shard, "SELECT DISTINCT host FROM contid.events_local") == [host], "shard \(shard) holds only \(host)")
        }
        let t0 = events.map(\.milliseconds).min()!
        func check(_ name: String, _ configure: (inout ClickHouseQuery) -> Void, _ expected: (ReplayedEvent) -> Bool) throws {
            var q = ClickHouseQuery()
            configure(&q)
            let want = events.filter(expected).map { "\($0.host)\t\($0.serial)" }
            let sql = q.sql(.columns(["host", "serial"]))
            let got = try fleet.rows(2, sql, format: nil)
            #expect(want.count > 0, "\(name): the query must select something")
            let firstDifference = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }
            #expect(got == want, "\(name): \(got.count) rows, files have \(want.count); first difference \(firstDifference.map { "at \($0.offset): \($0.element)" } ?? "at the end"); \(sql)")
            let count = try fleet.rows(1, q.sql(.count), format: nil)
            #expect(count == ["\(want.count)"], "\(name): count \(count)")
        }
        try check("--contid 1004", { $0.contid = ContainerID(1004) }) { $0.chain.first == "1004" }
        try check("--contid 1004 --nested", { $0.contid = ContainerID(1004); $0.nested = true }) { $0.chain.contains("1004") }
        try check("-k et", { $0.keys = ["et"] }) { $0.key.contains("et") }
        try check("--label team=t1", { $0.labels = ["team=t1"] }) { e in
            guard let c = e.chain.first, let n = Int(c), n > 1000, n < 5000 else { return false }
            return (n - 1000) % 3 == 1
        }
        try check("-m CONTAINER_OP", { $0.types = ["CONTAINER_OP"] }) { $0.types.contains("CONTAINER_OP") }
        try check("--node fleet-b -p 1003", { $0.nodes = ["fleet-b"]; $0.pids = [1003] }) { $0.host == "fleet-b" && $0.pid == 1003 }
        let since = AuditTime(seconds: (t0 + 7_000) / 1000, milliseconds: UInt16((t0 + 7_000) % 1000 + 3))
        let until = AuditTime(seconds: (t0 + 19_000) / 1000, milliseconds: UInt16((t0 + 19_000) % 1000 + 500))
        try check("--contid 1002 --since --until", { $0.contid = ContainerID(1002); $0.since = since; $0.until = until }) {
            $0.chain.first == "1002" && $0.milliseconds >= since.totalMilliseconds && $0.milliseconds < until.totalMilliseconds
        }
        // The raw form: the events' lines, in time order, byte for byte as replay writes them.
        var q = ClickHouseQuery()
        q.contid = ContainerID(1004)
        q.nodes = ["fleet-a"]
        let raw = try fleet.rows(2, q.sql(.raw), format: nil)
        let replayRaw = try fleet.sh("\(fleet.contidBinary) replay --format raw --no-progress \(files[0].path)", capture: true)
        var expected: [String] = []
        var group: [String] = []
        var groupSerial = ""
        func endGroup() { if group.last?.hasSuffix(" contid=1004") == true { expected += group }; group = [] }
        for line in replayRaw.split(separator: "\n") {
            let serial = String(line.drop { $0 != "(" }.prefix { $0 != ")" })
            if serial != groupSerial { endGroup(); groupSerial = serial }
            group.append(String(line))
        }
        endGroup()
        #expect(expected.count > 100)
        #expect(raw.count == expected.count)
        #expect(raw == expected, "\(zip(raw, expected).first { $0 != $1 }.map { "\($0)" } ?? "")")
    }
}

// MARK: - the fleet

/// One event of `contid replay --format json`, as the queries see it.
struct ReplayedEvent {
    var host: String
    var serial: UInt32
    var milliseconds: UInt64
    var chain: [String]
    var key: String
    var types: [String]
    var pid: Int32
}

final class Fleet {
    let dir: String
    let contidBinary: String
    private var stopped = false

    init() throws {
        try requireClickHouse()
        var template = Array("/tmp/contid-ch-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw LinuxAuditError.syscall("mkdtemp", Errno(rawValue: errno))
        }
        dir = String(cString: made)
        // A release contid when CONTID_TEST_BIN_DIR has one (the fault test needs an ingest that takes a while, not an age).
        if let d = getenv("CONTID_TEST_BIN_DIR"), access(String(cString: d) + "/contid", X_OK) == 0 {
            contidBinary = String(cString: d) + "/contid"
        } else {
            contidBinary = try DaemonHarness.binaries().1
        }
        // Ports of their own: 20000 + 20 per test process slot.
        let base = 20000 + Int(getpid() % 1500) * 20
        try sh("\(ClickHouseFleetTests.package)/scripts/clickhouse-fleet.sh start \(dir)/fleet \(base)")
        env = try Self.parseEnv(read(dir + "/fleet/env"))
    }

    private var env: [String: String] = [:]

    func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? sh("\(ClickHouseFleetTests.package)/scripts/clickhouse-fleet.sh stop \(dir)/fleet; rm -rf \(dir)")
    }

    deinit { stop() }

    var fleetDir: String { dir + "/fleet" }

    func url(_ n: Int, credentials: Bool = false) -> String {
        let u = env["CH\(n)_URL"]!
        guard credentials else { return u }
        return u.replacingFirst("http://", with: "http://\(env["CH_USER"]!):\(env["CH_PASSWORD"]!)@")
    }

    @discardableResult
    func sh(_ command: String, capture: Bool = false) throws -> String {
        let r = try runClean(["/bin/sh", "-c", command], within: .seconds(300))
        guard r.status == 0 || capture else { throw SystemTestPrecondition(description: "\(command) failed (\(r.status)): \(r.output)") }
        return r.output
    }

    func contid(_ args: [String]) throws -> (output: String, status: Int32) {
        try runClean([contidBinary] + args, within: .seconds(300))
    }

    func read(_ path: String) throws -> String {
        var out: [UInt8] = []
        try LogReader(path: path).forEachLine { line, _ in out += line; out.append(0x0A) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lines of a query's answer (TabSeparated unless `format` says otherwise; nil: as the SQL says).
    func rows(_ server: Int, _ sql: String, format: String? = "TabSeparated") throws -> [String] {
        let u = url(server).dropFirst(7)  // 127.0.0.1:PORT
        let colon = u.lastIndex(of: ":")!
        let c = HTTPConnection(host: String(u[..<colon]), port: UInt16(u[u.index(after: colon)...])!, timeout: .seconds(120))
        defer { c.close() }
        var q = Array((sql + (format.map { " FORMAT \($0)" } ?? "")).utf8)
        let r = try q.withUnsafeMutableBytes { try c.request(method: "POST", target: "/", body: UnsafeRawBufferPointer($0)) }
        guard r.status == 200 else { throw SystemTestPrecondition(description: "ClickHouse refused \(sql): \(r.text)") }
        return r.text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    /// `host\tserial\tchain` of each event `contid replay --format json` gives (chain without '^').
    func replayed(_ path: String, host: String) throws -> [String] {
        try replayedEvents(path, host: host).map { "\($0.host)\t\($0.serial)\t\($0.chain.joined(separator: ","))" }
    }

    func replayedEvents(_ path: String, host fallback: String? = nil) throws -> [ReplayedEvent] {
        let out = dir + "/replay.json"
        try sh("\(contidBinary) replay --format json --no-progress \(path) > \(out)")
        var events: [ReplayedEvent] = []
        try LogReader(path: out).forEachLine { bytes, _ in
            let line = String(decoding: bytes, as: UTF8.self)
            let node = line.jsonString(after: "{\"node\":") ?? fallback ?? ""
            let serial = UInt32(line.jsonNumber(after: "\"serial\":")!)!
            let time = line.jsonString(after: "\"time\":\"", quoted: false)!
            let ms = UInt64(time.replacingFirst(".", with: ""))!
            let chain = (line.jsonString(after: "\"contid\":") ?? "").split(separator: ",").map { $0.hasPrefix("^") ? String($0.dropFirst()) : String($0) }
            var types: [String] = []
            var rest = Substring(line)
            while let r = rest.range(of: "{\"type\":\"") {
                rest = rest[r.upperBound...]
                types.append(String(rest.prefix { $0 != "\"" }))
            }
            let key = line.jsonString(after: "\"key\":") ?? ""
            let pid = line.jsonString(after: "\"pid\":").flatMap { Int32($0) } ?? 0
            events.append(ReplayedEvent(host: node, serial: serial, milliseconds: ms, chain: chain, key: key, types: types, pid: pid))
        }
        return events
    }

    func waitFor(_ what: String, within limit: Duration, _ condition: () -> Bool) throws {
        let deadline = ContinuousClock.now + limit
        while !condition() {
            guard ContinuousClock.now < deadline else { throw SystemTestPrecondition(description: "no \(what) within \(limit)") }
            usleep(20_000)
        }
    }

    static func parseEnv(_ text: String) -> [String: String] {
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            out[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return out
    }
}

func requireClickHouse() throws {
    guard access("/usr/bin/clickhouse-server", X_OK) == 0 || access("/usr/sbin/clickhouse-server", X_OK) == 0 else {
        throw SystemTestPrecondition(description: "ClickHouse tests need Debian's clickhouse-server: run scripts/install-clickhouse.sh")
    }
}

func spoolEntries(_ path: String) throws -> [String] {
    guard let d = opendir(path) else { return [] }
    defer { closedir(d) }
    var names: [String] = []
    while let e = readdir(d) {
        names.append(withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }
    return names
}

extension String {
    func replacingFirst(_ target: String, with replacement: String) -> String {
        guard let r = range(of: target) else { return self }
        return String(self[..<r.lowerBound]) + replacement + String(self[r.upperBound...])
    }

    func range(of needle: String) -> Range<Index>? { Substring(self).range(of: needle) }

    /// The JSON string (or bare value) after `marker`; nil for null or when absent.
    func jsonString(after marker: String, quoted: Bool = true) -> String? {
        guard let r = range(of: marker) else { return nil }
        var rest = self[r.upperBound...]
        if !quoted { return String(rest.prefix { $0 != "\"" }) }
        if rest.hasPrefix("null") { return nil }
        if rest.hasPrefix("\"") {
            rest = rest.dropFirst()
            return String(rest.prefix { $0 != "\"" })
        }
        return String(rest.prefix { $0 != "," && $0 != "}" })
    }

    func jsonNumber(after marker: String) -> String? { jsonString(after: marker) }
}

extension Substring {
    func range(of needle: String) -> Range<Index>? {
        let n = Array(needle.utf8)
        guard !n.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].utf8.starts(with: n) {
                return i..<self.utf8.index(i, offsetBy: n.count)
            }
            i = index(after: i)
        }
        return nil
    }
}
