import Foundation
import Testing
import TestSupport

/// `contid search` against the real ausearch (Debian package auditd), event for event,
/// on every corpus file and on generated trails; `--contid`, `--nested` and `--label`
/// against the generator's ground truth; bad lines and bad indexes.
///
/// Events are compared by (node, serial, stamp) with their records in the order read. The
/// differences allowed, each with its reason:
/// - ausearch hands out an event when a record two seconds later arrives, and a record of it
///   that comes after that starts a second event with the same stamp and serial; contid keeps
///   them as one. Both sides' events are therefore merged by (node, serial, stamp) before the
///   comparison (the records must still be the same, in the same order).
/// - ausearch --raw ends each record of an event that has an ENRICHED record with 0x1D, also
///   the records that have none in the log (PROCTITLE); contid prints the lines as read.
///   A trailing 0x1D is removed from both before the comparison.
/// - Record types whose fields ausearch reads with parsers contid does not reproduce
///   (`notReproduced`: AVC, USER_AVC, OBJ_PID, IPC, SECCOMP, ANOM_*, NETFILTER_PKT, TTY,
///   FEATURE_CHANGE, INTEGRITY_*, DAEMON_ACCEPT/CLOSE) feed its pid, uid, auid, success and
///   key values in ways contid does not copy (AVC's own `pid=`, for one): events that hold one
///   are not compared for -p, -ui, -ul, --success and -k. For -m and time ranges they are,
///   except for AVC and USER_AVC: ausearch's parse_avc rejects some forms (AppArmor's
///   `apparmor="STATUS"` records) and then drops the whole event from every result, which
///   contid does not copy; events with those records are not compared at all.
@Suite(.serialized) struct SearchEquivalenceTests {
    static let ausearch = "/usr/sbin/ausearch"
    static var haveAusearch: Bool { FileManager.default.isExecutableFile(atPath: ausearch) }

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func run(_ exe: String, _ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        var e = ProcessInfo.processInfo.environment
        for (k, v) in env { e[k] = v }
        p.environment = e
        // Standard error to a file: both pipes read by one thread could fill and block.
        let errPath = makeTemporaryDirectory("search-err") + "/err"
        defer { removeTree((errPath as NSString).deletingLastPathComponent) }
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        let er = (try? Data(contentsOf: URL(fileURLWithPath: errPath))) ?? Data()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: er, as: UTF8.self))
    }

    func contid(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try run(ReplayCommandTests.binary.path, args, env: ["TZ": "UTC"])
    }

    /// Raw output as events: (node, serial, stamp) -> records in order.
    static func events(_ raw: String) -> [String: [String]] {
        var out: [String: [String]] = [:]
        for line in raw.split(separator: "\n") {
            guard let r = line.range(of: "msg=audit("), let close = line[r.upperBound...].firstIndex(of: ")") else { continue }
            let node = line.hasPrefix("node=") ? String(line.prefix { $0 != " " }) : ""
            // ausearch --raw ends every record of an ENRICHED event with 0x1D, also the records
            // the log wrote without one; contid prints the lines as the log has them.
            let text = line.last == "\u{1D}" ? String(line.dropLast()) : String(line)
            out[node + " " + line[r.upperBound..<close], default: []].append(text)
        }
        return out
    }

    /// ausearch's arguments for a query, and contid's.
    struct Query: CustomStringConvertible {
        var ausearch: [String]
        var contid: [String]
        var description: String { contid.joined(separator: " ") }
    }

    func compare(_ file: String, _ q: Query, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let a = try run(Self.ausearch, ["-if", file, "--raw"] + q.ausearch, env: ["TZ": "UTC", "LC_ALL": "C"])
        let c = try contid(["search", "--no-progress", "--no-index", file] + q.contid)
        let ea = Self.events(a.out), ec = Self.events(c.out)
        let usesParsers = q.ausearch.contains { ["-p", "-ui", "-ul", "--success", "-k"].contains($0) }
        func excused(_ k: String) -> Bool {
            ((ea[k] ?? []) + (ec[k] ?? [])).contains { line in
                (usesParsers ? Self.notReproduced : ["AVC", "USER_AVC"]).contains { line.hasPrefix("type=\($0) ") || line.contains(" type=\($0) ") }
            }
        }
        let onlyA = ea.keys.filter { ea[$0] != ec[$0] && !excused($0) }.sorted()
        let onlyC = ec.keys.filter { ea[$0] == nil && !excused($0) }.sorted()
        #expect(onlyA.isEmpty && onlyC.isEmpty,
                "\(file) \(q): \(ea.count) events from ausearch, \(ec.count) from contid; differing \(onlyA.prefix(3).map { "\($0): ausearch \(ea[$0] ?? []) contid \(ec[$0] ?? [])" }) only contid \(onlyC.prefix(3))",
                sourceLocation: sourceLocation)
        // Exit status: 0 with matches, 1 without (as ausearch).
        #expect(c.status == (ec.isEmpty ? 1 : 0), "\(file) \(q): status \(c.status) \(c.err)", sourceLocation: sourceLocation)
    }

    /// The queries run on a log: types, keys, a pid, uids, auid, success, a time range.
    func queries(for path: String) throws -> [Query] {
        let text = try String(contentsOfFile: path, encoding: .isoLatin1)
        func values(_ field: String) -> [String] {
            var seen: [String: Int] = [:]
            for m in text.matches(of: try! Regex("[ (]\(field)=([^ )]+)")) {
                seen[String(m.output[1].substring!), default: 0] += 1
            }
            return seen.sorted { $0.value > $1.value }.map(\.key)
        }
        var out: [Query] = [
            Query(ausearch: ["-m", "SYSCALL"], contid: ["-m", "SYSCALL"]),
            Query(ausearch: ["-m", "PATH,EXECVE"], contid: ["-m", "PATH,EXECVE"]),
            Query(ausearch: ["-m", "CONFIG_CHANGE"], contid: ["-m", "CONFIG_CHANGE"]),
            Query(ausearch: ["-m", "USER_LOGIN", "-m", "USER_ACCT"], contid: ["-m", "USER_LOGIN", "-m", "USER_ACCT"]),
            Query(ausearch: ["--success", "yes"], contid: ["--success", "yes"]),
            Query(ausearch: ["--success", "no"], contid: ["--success", "no"]),
            Query(ausearch: ["-ui", "0"], contid: ["-ui", "0"]),
            Query(ausearch: ["-ul", "1000"], contid: ["-ul", "1000"]),
            Query(ausearch: ["-ul", "4294967295"], contid: ["-ul", "4294967295"]),
        ]
        for k in values("key").prefix(3) {
            var key = k.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            if key == "(null)" { key = "null" }
            guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else { continue }
            let part = String(key.prefix(max(1, key.count - 1)))  // a substring, as ausearch matches
            out.append(Query(ausearch: ["-k", part], contid: ["-k", part]))
        }
        for p in values("pid").prefix(2) { out.append(Query(ausearch: ["-p", p], contid: ["-p", p])) }
        for u in values("uid").prefix(2) where u != "0" { out.append(Query(ausearch: ["-ui", u], contid: ["-ui", u])) }
        // A time range: the seconds of the middle stamp, and one second either side.
        let stamps = text.matches(of: /msg=audit\((\d+)\./).compactMap { UInt64($0.output.1) }.sorted()
        if !stamps.isEmpty {
            let mid = stamps[stamps.count / 2]
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "MM/dd/yy HH:mm:ss"
            func words(_ t: UInt64) -> [String] { f.string(from: Date(timeIntervalSince1970: Double(t))).split(separator: " ").map(String.init) }
            out.append(Query(ausearch: ["-ts"] + words(mid - 1) + ["-te"] + words(mid + 1),
                             contid: ["--since", "\(mid - 1)", "--until", "\(mid + 1)"]))
            out.append(Query(ausearch: ["-ts"] + words(mid) + ["-m", "SYSCALL", "--success", "yes"],
                             contid: ["--since", "\(mid)", "-m", "SYSCALL", "--success", "yes"]))
        }
        return out
    }

    /// Record types whose ausearch parsers (avc, obj, kernel_anom, pkt, tty, task_info of
    /// FEATURE_CHANGE/ANOM_LINK, integrity, daemon2) contid does not reproduce.
    static let notReproduced: [String] = [
        "AVC", "USER_AVC", "OBJ_PID", "IPC", "SECCOMP", "ANOM_PROMISCUOUS", "ANOM_ABEND", "ANOM_LINK",
        "NETFILTER_PKT", "TTY", "FEATURE_CHANGE", "INTEGRITY_DATA", "INTEGRITY_METADATA", "INTEGRITY_STATUS",
        "INTEGRITY_HASH", "INTEGRITY_PCR", "INTEGRITY_RULE", "DAEMON_ACCEPT", "DAEMON_CLOSE", "NETFILTER_CFG", "EVENT_LISTENER",
    ]

    @Test(.enabled(if: haveAusearch), arguments: Corpus.logFiles)
    func searchEqualsAusearchOnCorpusFile(_ name: String) throws {
        let path = Corpus.root.appendingPathComponent(name).path
        for q in try queries(for: path) { try compare(path, q) }
    }

    static func generate(_ args: [String], megabytes: String = "3") throws -> (log: String, truth: String, dir: String) {
        let dir = makeTemporaryDirectory("search")
        let log = dir + "/gen.log", truth = dir + "/truth.jsonl"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [repo.appendingPathComponent("Benchmarks/gen-log.py").path, "--source",
                       Corpus.root.appendingPathComponent("captured-linux-6.18-raw.log").path, "--truth", truth] + args + [log, megabytes]
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        return (log, truth, dir)
    }

    @Test(.enabled(if: haveAusearch))
    func searchEqualsAusearchOnAGeneratedTrailWithOurTypesAsUnknown() throws {
        let g = try Self.generate(["--numeric"], megabytes: "12")
        defer { removeTree(g.dir) }
        var qs = try queries(for: g.log)
        qs.append(Query(ausearch: ["-m", "2900"], contid: ["-m", "CONTAINER_OP"]))
        qs.append(Query(ausearch: ["-m", "2901,2908"], contid: ["-m", "CONTAINER_ID,CONTAINER_INFO"]))
        qs.append(Query(ausearch: ["-p", "19005"], contid: ["-p", "19005"]))
        for q in qs { try compare(g.log, q) }
    }

    /// The ground truth's containers and events.
    struct Truth {
        var containers: [(id: UInt64, parent: UInt64?, start: UInt64, end: UInt64, labels: [String: String])] = []
        var events: [(serial: UInt64, time: UInt64, chain: [UInt64])] = []
        init(_ path: String) throws {
            for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
                let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                if let c = o["container"] as? UInt64 {
                    containers.append((c, o["parent"] as? UInt64, o["start"] as! UInt64, o["end"] as! UInt64, o["labels"] as! [String: String]))
                } else {
                    events.append((o["serial"] as! UInt64, o["time"] as! UInt64, (o["chain"] as! [NSNumber]).map(\.uint64Value)))
                }
            }
        }
    }

    /// The serials of a search's events that have a CONTAINER_ID record.
    func serials(_ args: [String]) throws -> Set<UInt64> {
        let r = try contid(["search", "--no-progress"] + args)
        var out = Set<UInt64>()
        for (key, recs) in Self.events(r.out) where recs.contains(where: { $0.hasPrefix("type=CONTAINER_ID ") || $0.hasPrefix("type=UNKNOWN[2901] ") }) {
            out.insert(UInt64(key.split(separator: ":").last!)!)
        }
        return out
    }

    @Test func contidAndNestedAndLabelSelectExactlyTheGroundTruthsEvents() throws {
        let g = try Self.generate([])
        defer { removeTree(g.dir) }
        let truth = try Truth(g.truth)
        let nestedParents = Set(truth.containers.compactMap(\.parent))
        #expect(!nestedParents.isEmpty)
        // A parent with children: alone, then with its nested containers.
        let withNestedEvents = nestedParents.sorted().filter { id in truth.events.contains { $0.chain.count > 1 && $0.chain.dropFirst().contains(id) } }
        #expect(!withNestedEvents.isEmpty)
        for id in withNestedEvents.prefix(3) {
            let own = Set(truth.events.filter { $0.chain.first == id }.map(\.serial))
            let all = Set(truth.events.filter { $0.chain.contains(id) }.map(\.serial))
            #expect(own.count < all.count)
            #expect(try serials([g.log, "--contid", "\(id)"]) == own)
            #expect(try serials([g.log, "--contid", "\(id)", "--nested"]) == all)
        }
        // A label: the events of the containers that carried it, while they carried it
        // (reused IDs: the other holder's events are not included).
        let reused = Dictionary(grouping: truth.containers, by: \.id).filter { _, holders in
            holders.count > 1 && holders.allSatisfy { h in truth.events.contains { $0.chain.first == h.id && $0.time >= h.start && $0.time <= h.end } }
        }
        #expect(!reused.isEmpty)
        for (_, holders) in reused.prefix(3) {
            let h = holders[1]
            let name = h.labels["name"]!
            let want = Set(truth.events.filter { $0.chain.first == h.id && $0.time >= h.start && $0.time <= h.end }.map(\.serial))
            let everyHolder = Set(truth.events.filter { $0.chain.first == h.id }.map(\.serial))
            #expect(want != everyHolder)
            #expect(try serials([g.log, "--label", "name=\(name)"]) == want)
        }
        let team = truth.containers[0].labels["team"]!
        let teamWant = Set(truth.events.filter { e in
            truth.containers.contains { $0.labels["team"] == team && e.chain.first == $0.id && e.time >= $0.start && e.time <= $0.end }
        }.map(\.serial))
        #expect(try serials([g.log, "--label", "team=\(team)"]) == teamWant)
    }

    @Test func theIndexNeverChangesAResultAndAStaleOrCorruptOneIsIgnored() throws {
        let g = try Self.generate([], megabytes: "6")
        defer { removeTree(g.dir) }
        let truth = try Truth(g.truth)
        let id = truth.containers[0].id
        let queries: [[String]] = [["--contid", "\(id)"], ["--contid", "\(truth.containers[5].id)", "--nested"],
                                   ["-k", "etc"], ["-m", "CONTAINER_OP"], ["-m", "CONFIG_CHANGE"],
                                   ["--since", "\(truth.containers[3].start / 1000)", "--until", "\(truth.containers[3].start / 1000 + 3)"]]
        var without: [[String]: String] = [:]
        for q in queries { without[q] = try contid(["search", "--no-progress", "--no-index", g.log] + q).out }
        let built = try contid(["index", "--block-bytes", "65536", g.log])
        #expect(built.status == 0, "\(built.err)")
        for q in queries {
            let r = try contid(["search", "--no-progress", g.log] + q)
            #expect(r.out == without[q], "\(q) with the index")
            #expect(r.err.isEmpty, "\(r.err)")
        }
        // Corrupt: one byte of the sidecar flipped.
        let sidecar = g.log + ".cidx"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: sidecar))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: sidecar))
        let corrupt = try contid(["search", "--no-progress", g.log, "--contid", "\(id)"])
        #expect(corrupt.out == without[["--contid", "\(id)"]])
        #expect(corrupt.err.contains("corrupt index (checksum mismatch); ignored"), "\(corrupt.err)")
        // Stale: the log rewritten under a valid index.
        _ = try contid(["index", g.log])
        var log = try Data(contentsOf: URL(fileURLWithPath: g.log))
        let at = log.count - 100
        let original = log[at]
        log[at] = log[at] == UInt8(ascii: "1") ? UInt8(ascii: "2") : UInt8(ascii: "1")
        try log.write(to: URL(fileURLWithPath: g.log))
        let stale = try contid(["search", "--no-progress", g.log, "-m", "CONFIG_CHANGE"])
        #expect(stale.err.contains("stale index"), "\(stale.err)")
        // Grown: the index covers a prefix, the rest is read whole.
        log[at] = original
        try log.write(to: URL(fileURLWithPath: g.log))
        _ = try contid(["index", g.log])
        let extra = "type=CONTAINER_OP msg=audit(1895929164.000:99999999): op=set opid=1 contid=\(id) old-contid=-1 pid=1 uid=0 auid=0 ses=1 comm=\"x\" exe=\"/x\" res=1\n"
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: g.log))
        h.seekToEndOfFile()
        h.write(Data(extra.utf8))
        try h.close()
        let grown = try contid(["search", "--no-progress", g.log, "-m", "CONTAINER_OP"])
        #expect(grown.err.isEmpty, "\(grown.err)")
        #expect(grown.out.hasSuffix(extra))
    }

    @Test func badAndTruncatedLinesAreReportedAsFileLineAndTheRestIsRead() throws {
        let dir = makeTemporaryDirectory("search-bad")
        defer { removeTree(dir) }
        let path = dir + "/bad.log"
        try """
            type=SYSCALL msg=audit(1700000000.000:1): arch=c000003e syscall=2 success=yes exit=3 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=5 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="a" exe="/a" key="k1"
            garbage here
            type=SYSCALL msg=audit(1700000000.0
            type=SYSCALL msg=audit(1700000001.000:2): arch=c000003e syscall=2 success=no exit=-13 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=6 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="b" exe="/b" key="k1"
            type=SYSCALL msg=audit(1700000002.000:3): arch=c000003e syscall=2 succ
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try contid(["search", "--no-progress", path, "-k", "k1"])
        #expect(r.status == 0)
        #expect(Self.events(r.out).count == 2)
        let errs = r.err.split(separator: "\n").map(String.init)
        #expect(errs.count == 2, "\(errs)")
        #expect(errs.first?.hasPrefix("\(path):2: column 1:") == true, "\(errs)")
        #expect(errs.last?.hasPrefix("\(path):3: column ") == true, "\(errs)")
    }

    @Test func reportCountsEachContainersEventsAndRegistrationsAsTheGroundTruthHasThem() throws {
        let g = try Self.generate([])
        defer { removeTree(g.dir) }
        let truth = try Truth(g.truth)
        let r = try contid(["report", "--no-progress", "--format", "csv", g.log])
        #expect(r.status == 0, "\(r.err)")
        var rows: [String: String] = [:]
        for line in r.out.split(separator: "\n") {
            let cells = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if cells.count == 4 { rows[cells[0] + "|" + cells[1] + "|" + cells[2]] = cells[3] }
        }
        for c in truth.containers.prefix(5) {
            let events = truth.events.filter { $0.chain.first == c.id }.count
            let holders = truth.containers.filter { $0.id == c.id }.count
            // Its events with a CONTAINER_ID, its registrations, its CONTAINER_INFO and drop events.
            #expect(rows["\(c.id)|events|"] == "\(events + 3 * holders)", "\(c.id)")
            #expect(rows["\(c.id)|registrations|"] == "\(holders)", "\(c.id)")
        }
        let text = try contid(["report", "--no-progress", g.log, "--contid", "\(truth.containers[0].id)"])
        #expect(text.out.contains("Container \(truth.containers[0].id): "))
        #expect(!text.out.contains("Host (no container)"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/sbin/aureport")),
          arguments: ["captured-linux-6.18-raw.log", "captured-linux-6.18-enriched.log"])
    func reportSummaryCountsEqualAureports(_ name: String) throws {
        let path = Corpus.root.appendingPathComponent(name).path
        let a = try run("/usr/sbin/aureport", ["-if", path, "--summary"], env: ["TZ": "UTC", "LC_ALL": "C"])
        let c = try contid(["report", "--no-progress", path])
        func counts(_ text: String) -> [String: String] {
            var out: [String: String] = [:]
            for line in text.split(separator: "\n") where line.hasPrefix("Number of ") {
                let kv = line.split(separator: ":", maxSplits: 1)
                if kv.count == 2 { out[String(kv[0])] = kv[1].trimmingCharacters(in: .whitespaces) }
            }
            return out
        }
        let ours = counts(c.out), theirs = counts(a.out)
        #expect(ours.count == 16)
        for (k, v) in ours { #expect(theirs[k] == v, "\(name): \(k): contid \(v), aureport \(theirs[k] ?? "none")") }
    }

    @Test func interpretedAndJSONFormsNameWhatAusearchNames() throws {
        let dir = makeTemporaryDirectory("search-forms")
        defer { removeTree(dir) }
        let path = dir + "/i.log"
        try """
            type=SYSCALL msg=audit(1700000000.123:7): arch=c000003e syscall=257 success=no exit=-13 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=5 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="cat" exe="/usr/bin/cat" key="etc"
            type=PROCTITLE msg=audit(1700000000.123:7): proctitle=636174002F6574632F736861646F77
            type=CONTAINER_ID msg=audit(1700000000.123:7): record=1 contid=4,^2

            """.write(toFile: path, atomically: true, encoding: .utf8)
        let i = try contid(["search", "--no-progress", "--format", "interpreted", path, "-k", "etc"])
        #expect(i.out == """
            ----
            type=SYSCALL msg=audit(11/14/2023 22:13:20.123:7) : arch=x86_64 syscall=openat success=no exit=EACCES(Permission denied) a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=5 auid=unset uid=root gid=root euid=root suid=root fsuid=root egid=root sgid=root fsgid=root tty=(none) ses=unset comm=cat exe=/usr/bin/cat key=etc
            type=PROCTITLE msg=audit(11/14/2023 22:13:20.123:7) : proctitle=cat /etc/shadow
            type=CONTAINER_ID msg=audit(11/14/2023 22:13:20.123:7) : record=1 contid=4,^2

            """)
        let j = try contid(["search", "--no-progress", "--format", "json", path, "--contid", "2", "--nested"])
        #expect(j.out.hasPrefix("{\"node\":null,\"serial\":7,\"time\":\"1700000000.123\",\"contid\":\"4,^2\",\"records\":[{\"type\":\"SYSCALL\""))
        #expect(j.out.contains("\"proctitle\":\"cat\\u0000/etc/shadow\"") || j.out.contains("\"proctitle\":\"cat"))
        #expect(try contid(["search", "--no-progress", path, "--contid", "2"]).status == 1)
    }
}
