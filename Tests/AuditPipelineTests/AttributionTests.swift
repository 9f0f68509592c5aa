import Foundation
import Testing
import AuditCodec
import ContainerEngine
@testable import AuditPipeline

/// Offline attribution: a trail recorded with fork/exec/exit rules and the
/// orchestrators' CONTAINER_OP records is re-attributed after the fact.
@Suite struct AttributionTests {
    func replay(_ lines: [String], format: ReplayFormat = .json, holds: Bool = true) throws -> (CollectedOutput, ReplaySummary) {
        let path = try temporaryFile(lines.joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let out = CollectedOutput()
        let r = Replay(format: format, output: out, holds: holds)
        try r.read(path: path)
        let s = r.finish()
        return (out, s)
    }

    /// serial -> contid ("" for null) of every event in JSON output.
    func attributions(_ json: String) throws -> [UInt32: String] {
        var out: [UInt32: String] = [:]
        for line in json.split(separator: "\n") {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let serial = try #require(obj["serial"] as? Int)
            #expect(out[UInt32(serial)] == nil, "event \(serial) printed twice")
            out[UInt32(serial)] = obj["contid"] as? String ?? ""
        }
        return out
    }

    @Test func generatedTraceOf10000ProcessesIn50NestedContainersIsAttributedExactly() throws {
        var g = TraceGenerator(seed: 0x5EED_C0DE)
        g.run(processes: 10_000, containers: 50)
        // The trace has what it must exercise.
        #expect(g.processesCreated == 10_000)
        #expect(g.containers.count == 50)
        #expect(g.maxDepth == 3)
        #expect(g.pidReuses > 1000)
        #expect(g.vforkReorders > 500)
        #expect(g.orphans > 500)
        #expect(g.subshells == 911)
        #expect(g.reusesAfterExit == 2536)
        #expect(g.truth.count == 33_661)

        let (out, summary) = try replay(g.lines)
        #expect(summary.errors == 0)
        #expect(summary.lost == 0)
        let got = try attributions(out.text)
        #expect(got.count == g.truth.count)
        // Before clone return values named the parents of subshells' children: 14,303 wrong.
        let m = g.mismatches(got)
        #expect(m.wrong == 0, "\(m.first)")
        #expect(m.missing == 0)
        // And the trail is not trivial: most events carry a chain, some nested ones three deep.
        let attributed = g.truth.values.filter { !$0.isEmpty }.count
        #expect(attributed > g.truth.count / 3)
        #expect(g.truth.values.contains { $0.split(separator: ",").count == 3 })
    }

    @Test func rawOutputCarriesRecordLinksAndContainerIDRecords() throws {
        let lines = [
            "type=SYSCALL msg=audit(1700000000.000:10): arch=c000003e syscall=59 success=yes exit=0 a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=500 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"orch\" exe=\"/usr/bin/orch\" key=\"t\"",
            "type=SYSCALL msg=audit(1700000000.001:11): arch=c000003e syscall=57 success=yes exit=600 a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=500 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"orch\" exe=\"/usr/bin/orch\" key=\"t\"",
            "type=CONTAINER_OP msg=audit(1700000000.002:12): op=set opid=600 contid=123456 old-contid=-1 pid=500 uid=0 auid=0 ses=1 comm=\"orch\" exe=\"/usr/bin/orch\" res=1",
            "type=SYSCALL msg=audit(1700000000.003:13): arch=c000003e syscall=257 success=yes exit=3 a0=0 a1=0 a2=0 a3=0 items=1 ppid=500 pid=600 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"cat\" exe=\"/usr/bin/cat\" key=\"etc\"",
            "type=PATH msg=audit(1700000000.003:13): item=0 name=\"/etc/hostname\"",
            "type=OBJ_PID msg=audit(1700000000.004:14): opid=600 oauid=0 ouid=0 oses=1 ocomm=\"cat\"",
            "type=SYSCALL msg=audit(1700000000.004:14): arch=c000003e syscall=62 success=yes exit=0 a0=258 a1=f a2=0 a3=0 items=0 ppid=1 pid=500 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"orch\" exe=\"/usr/bin/orch\" key=\"kill\"",
        ]
        let (out, _) = try replay(lines, format: .raw)
        let text = out.text.split(separator: "\n").map(String.init)
        #expect(text.contains("type=SYSCALL msg=audit(1700000000.003:13): arch=c000003e syscall=257 success=yes exit=3 a0=0 a1=0 a2=0 a3=0 items=1 ppid=500 pid=600 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"cat\" exe=\"/usr/bin/cat\" key=\"etc\" record=1"))
        #expect(text.contains("type=CONTAINER_ID msg=audit(1700000000.003:13): record=1 contid=123456"))
        // The signal sender has no ID; its target does: one CONTAINER_ID linked to the OBJ_PID.
        #expect(text.contains("type=OBJ_PID msg=audit(1700000000.004:14): opid=600 oauid=0 ouid=0 oses=1 ocomm=\"cat\" record=1"))
        #expect(text.contains("type=CONTAINER_ID msg=audit(1700000000.004:14): record=1 contid=123456"))
        #expect(!text.contains { $0.contains(":14): arch=c000003e") && $0.contains("record=") })
        // Reading contid's own output again changes nothing.
        let (again, _) = try replay(text, format: .raw)
        #expect(again.text == out.text)
    }

    @Test func aContainerOpWrappedAsAUserMessageByTheKernelIsApplied() throws {
        let lines = [
            "type=SYSCALL msg=audit(1700000000.000:20): arch=c000003e syscall=57 success=yes exit=700 a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=500 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"orch\" exe=\"/o\" key=\"t\"",
            "type=UNKNOWN[2900] msg=audit(1700000000.001:21): pid=99 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=700 contid=42 old-contid=-1 pid=500 uid=0 auid=0 ses=1 comm=\"orch\" exe=\"/o\" res=1'",
            "type=SYSCALL msg=audit(1700000000.002:22): arch=c000003e syscall=59 success=yes exit=0 a0=0 a1=0 a2=0 a3=0 items=0 ppid=500 pid=700 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/bin/sh\" key=\"t\"",
        ]
        let (out, _) = try replay(lines)
        let got = try attributions(out.text)
        #expect(got == [20: "", 21: "", 22: "42"])
    }

    func sc(_ serial: Int, _ syscall: Int, pid: Int, ppid: Int, exit: Int = 0) -> String {
        "type=SYSCALL msg=audit(1700000000.\(String(format: "%03d", serial)):\(serial)): arch=c000003e syscall=\(syscall) success=yes exit=\(exit) a0=0 a1=0 a2=0 a3=0 items=0 ppid=\(ppid) pid=\(pid) auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=3 comm=\"sh\" exe=\"/bin/sh\" key=\"t\""
    }

    /// Every event's labels in JSON output: serial -> labels.
    func labels(_ json: String) throws -> [UInt32: [String: String]] {
        var out: [UInt32: [String: String]] = [:]
        for line in json.split(separator: "\n") {
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            out[UInt32(try #require(obj["serial"] as? Int))] = try #require(obj["labels"] as? [String: String])
        }
        return out
    }

    @Test func containerInfoRecordsGiveEveryEventOfTheContainerItsLabelsInJSON() throws {
        let lines = [
            sc(40, 57, pid: 500, ppid: 1, exit: 700),
            "type=CONTAINER_OP msg=audit(1700000000.041:41): op=set opid=700 contid=42 old-contid=-1 pid=500 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1",
            "type=CONTAINER_INFO msg=audit(1700000000.042:42): opid=700 contid=42 runtime=\"runc\" id=\"web\" name=\"web-1\" labels=\"team=payments,tier=front\"",
            sc(43, 59, pid: 700, ppid: 500),
            sc(44, 57, pid: 700, ppid: 500, exit: 701),
            sc(45, 59, pid: 701, ppid: 700),
            // As auditd logs it when contidd submits it through the kernel: wrapped, by number.
            "type=UNKNOWN[2900] msg=audit(1700000000.046:46): pid=99 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=800 contid=43 old-contid=-1 pid=500 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1'",
            "type=UNKNOWN[2908] msg=audit(1700000000.047:47): pid=99 uid=0 auid=4294967295 ses=4294967295 msg='opid=800 contid=43 runtime=\"podman\" id=\"db\"'",
            sc(48, 59, pid: 800, ppid: 500),
        ]
        let text = try replay(lines).0.text
        #expect(try attributions(text) == [40: "", 41: "", 42: "", 43: "42", 44: "42", 45: "42", 46: "", 47: "", 48: "43"])
        let web = ["runtime": "runc", "id": "web", "name": "web-1", "team": "payments", "tier": "front"]
        let got = try labels(text)
        #expect(got[43] == web)
        #expect(got[45] == web)
        #expect(got[48] == ["runtime": "podman", "id": "db"])
        #expect(got[40] == [:])
    }

    @Test func aJoinRecordPutsTheProcessThatEnteredAndItsLaterChildrenInTheContainer() throws {
        let lines = [
            sc(50, 57, pid: 500, ppid: 1, exit: 700),
            "type=CONTAINER_OP msg=audit(1700000000.051:51): op=set opid=700 contid=42 old-contid=-1 pid=500 uid=0 auid=1000 ses=3 comm=\"runc\" exe=\"/usr/bin/runc\" res=1",
            sc(52, 57, pid: 600, ppid: 1, exit: 900),     // runc exec's child, outside the container
            sc(53, 59, pid: 900, ppid: 600),
            "type=CONTAINER_OP msg=audit(1700000000.054:54): op=join opid=900 contid=42 old-contid=-1 pid=900 uid=0 auid=1000 ses=3 comm=\"runc:[2:INIT]\" exe=\"/usr/bin/runc\" res=1",
            sc(55, 59, pid: 900, ppid: 600),
            sc(56, 57, pid: 900, ppid: 600, exit: 901),
            sc(57, 257, pid: 901, ppid: 900, exit: 3),
            sc(58, 59, pid: 600, ppid: 1),                // the runtime itself stays out
        ]
        let suite = TrailAttributor()
        let out = CollectedOutput()
        let path = try temporaryFile(lines.joined(separator: "\n") + "\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let r = Replay(format: .json, output: out, attributor: suite)
        try r.read(path: path)
        r.finish()
        #expect(try attributions(out.text) == [50: "", 51: "", 52: "", 53: "", 54: "", 55: "42", 56: "42", 57: "42", 58: ""])
        #expect(suite.joinsApplied == 1)
    }

    @Test func aFailedRegistrationChangesNothing() throws {
        let lines = [
            "type=SYSCALL msg=audit(1700000000.000:30): arch=c000003e syscall=57 success=yes exit=800 a0=0 a1=0 a2=0 a3=0 items=0 ppid=1 pid=500 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"orch\" exe=\"/o\" key=\"t\"",
            "type=CONTAINER_OP msg=audit(1700000000.001:31): op=set opid=800 contid=7 old-contid=-1 pid=500 uid=0 auid=0 ses=1 comm=\"orch\" exe=\"/o\" res=0 errno=EBUSY",
            "type=SYSCALL msg=audit(1700000000.002:32): arch=c000003e syscall=59 success=yes exit=0 a0=0 a1=0 a2=0 a3=0 items=0 ppid=500 pid=800 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/bin/sh\" key=\"t\"",
        ]
        let got = try attributions(try replay(lines).0.text)
        #expect(got[32] == "")
    }
}

@Suite struct AnnotatedRecordTests {
    /// Records built by the annotator carry exactly the header a fresh parse gives.
    @Test func annotatedRecordsHaveTheHeadersOfAFreshParse() throws {
        let registry = ContainerRegistry()
        registry.apply(.discovered(ProcessKey(pid: 10, start: 1), parent: 0))
        registry.apply(.discovered(ProcessKey(pid: 11, start: 2), parent: 10))
        let writer = Writer(process: ProcessKey(pid: 10, start: 1), hasAuditControl: true, comm: "o", exe: "/o")
        try registry.register(writer: writer, target: ProcessKey(pid: 11, start: 2), id: ContainerID(77))
        for line in [
            "node=n1 type=SYSCALL msg=audit(1.000:5): syscall=1 pid=11 key=(null)\u{1D}ARCH=x86_64",
            "type=SYSCALL msg=audit(1.000:5): syscall=1 pid=11 key=(null)",
        ] {
            let e = AuditEvent(node: nil, serial: 5, time: AuditTime(seconds: 1, milliseconds: 0), records: [try AuditRecord(parsing: line)])
            let (out, chain) = EventAnnotator.annotate(e, registry: registry)
            #expect(chain == "77")
            #expect(out.records.count == 2)
            for r in out.records {
                let fresh = try AuditRecord(parsing: r.text)
                #expect(fresh.header == r.header, "\(r.line)")
            }
            #expect(out.records[1].line.hasSuffix("type=CONTAINER_ID msg=audit(1.000:5): record=1 contid=77"))
            #expect(out.records[0].line.contains("key=(null) record=1"))
        }
    }
}
