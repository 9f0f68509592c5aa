import TestSupport
import Testing
@testable import AuditCodec

/// Every file of the shared corpus: parsed with no error, re-encoded byte for byte,
/// and assembled into exactly the events we counted (and checked against ausearch,
/// which agrees except where it splits LOGIN from its SYSCALL or counts '#' lines).
@Suite struct CorpusTests {
    /// path -> (records, events, lost)
    static let expected: [String: (Int, Int, Int)] = [
        "audit-userspace/test.log": (12, 7, 0),
        "audit-userspace/test2.log": (12, 7, 0),
        "audit-userspace/test3.log": (15, 8, 454),
        "audit-userspace/test4.log": (13, 2, 1472),
        "captured-linux-6.18-enriched.log": (4000, 941, 0),
        "captured-linux-6.18-raw.log": (4000, 941, 0),
        "laurel/fork-sleep-exec.txt": (13, 3, 1),
        "laurel/line-user-acct.txt": (1, 1, 0),
        "laurel/proc-trace-dpkg-l.txt": (68, 23, 0),
        "laurel/record-adjntpval.txt": (3, 1, 0),
        "laurel/record-anom-promiscuous.txt": (4, 1, 0),
        "laurel/record-avc-apparmor.txt": (3, 1, 0),
        "laurel/record-bind-ipv4-bigendian.txt": (4, 1, 0),
        "laurel/record-connect.txt": (6, 2, 0),
        "laurel/record-execve-long.txt": (9, 1, 0),
        "laurel/record-execve.txt": (7, 1, 0),
        "laurel/record-login.txt": (3, 1, 0),
        "laurel/record-nscd.txt": (5, 1, 0),
        "laurel/record-perl-reverse-shell.txt": (8, 1, 0),
        "laurel/record-ptrace.txt": (3, 1, 0),
        "laurel/record-service-start.txt": (5, 1, 0),
        "laurel/record-syscall-key.txt": (6, 3, 0),
        "laurel/record-syscall-nullkey.txt": (8, 3, 0),
        "laurel/record-uringop.txt": (2, 1, 0),
        "laurel/record-weblogic.txt": (6, 1, 0),
        "laurel/shell-proc-trace-confusion.txt": (164, 72, 49309),
        "laurel/shell-proc-trace-reordered.txt": (39, 9, 0),
        "laurel/shell-proc-trace.txt": (39, 9, 0),
    ] .merging((0...16).map { (String(format: "laurel/tree/%02d.txt", $0), (7, 1, 0)) }) { a, _ in a }

    @Test func corpusHasEveryExpectedFileAndNoOther() {
        #expect(Corpus.logFiles == Self.expected.keys.sorted())
    }

    @Test(arguments: Corpus.logFiles)
    func everyLineParsesAndReencodesByteIdentically(path: String) throws {
        var parsed = 0
        for (n, line) in try Corpus.lines(path).enumerated() where !line.isEmpty && line.first != UInt8(ascii: "#") {
            let record: AuditRecord
            do { record = try AuditRecord(parsing: line) } catch {
                Issue.record("\(path):\(n + 1): \(error)")
                continue
            }
            parsed += 1
            #expect(record.encoded() == line, "\(path):\(n + 1) re-encodes differently")
        }
        #expect(parsed == Self.expected[path]?.0)
    }

    @Test(arguments: Corpus.logFiles)
    func assemblesTheExactEventCount(path: String) throws {
        var events = 0
        let a = EventAssembler { _ in events += 1 }
        var errors = 0
        for line in try Corpus.lines(path) where !line.isEmpty && line.first != UInt8(ascii: "#") {
            if line.withUnsafeBytes({ a.push(line: $0) }) != nil { errors += 1 }
        }
        a.finish()
        let (records, evs, lost) = try #require(Self.expected[path])
        #expect(errors == 0)
        #expect(a.counters.records == records)
        #expect(events == evs)
        #expect(a.counters.events == evs)
        #expect(a.counters.lost == lost)
        #expect(a.counters.duplicates == 0)
        #expect(a.counters.late == 0)
    }

    @Test func capturedEnrichedAndRawGiveTheSameEvents() throws {
        func events(_ path: String) throws -> [[String]] {
            var out: [[String]] = []
            let a = EventAssembler { v in
                let e = v.makeEvent()
                out.append(e.records.map { "\($0.serial) \($0.typeName) \($0.body)" })
            }
            for line in try Corpus.lines(path) { line.withUnsafeBytes { _ = a.push(line: $0) } }
            a.finish()
            return out
        }
        let raw = try events("captured-linux-6.18-raw.log")
        let enriched = try events("captured-linux-6.18-enriched.log")
        #expect(raw.count == 941)
        #expect(raw == enriched)
    }

    @Test func capturedLogRecordTypesAreCountedExactly() throws {
        var counts: [String: Int] = [:]
        for line in try Corpus.lines("captured-linux-6.18-enriched.log") {
            counts[try AuditRecord(parsing: line).typeName, default: 0] += 1
        }
        #expect(counts == ["SYSCALL": 940, "PROCTITLE": 939, "PATH": 938, "CWD": 702, "EXECVE": 236,
                           "BPRM_FCAPS": 236, "CONFIG_CHANGE": 5, "SOCKADDR": 3, "DAEMON_START": 1])
    }
}
