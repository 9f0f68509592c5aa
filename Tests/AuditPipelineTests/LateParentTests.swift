import Foundation
import Testing
import AuditCodec
@testable import AuditPipeline

/// Trails whose process records come before the record that names their parent:
/// subshells that fork at once, pids reused right after an exit, and both at once.
@Suite struct LateParentTests {
    /// serial -> chain ("" for none) of every event, in the order handed out.
    struct Attributed {
        var chains: [UInt32: String] = [:]
        var order: [UInt32] = []
        var printedTwice = 0
    }

    /// Replay's path (assembler in serial order, then attribution), through the held entry point.
    func heldReplay(_ lines: [String], _ attributor: TrailAttributor) -> Attributed {
        final class Box { var out = Attributed() }
        let box = Box()
        func collect(_ e: AuditEvent, _ contid: String?) {
            if box.out.chains.updateValue(contid ?? "", forKey: e.serial) != nil { box.out.printedTwice += 1 }
            box.out.order.append(e.serial)
        }
        let assembler = EventAssembler(timeoutMilliseconds: 2000, ordered: true) { view in
            attributor.attribute(view.makeEvent(), emit: collect)
        }
        for line in lines {
            let error = Array(line.utf8).withUnsafeBytes { assembler.push(line: $0) }
            #expect(error == nil, "\(line)")
        }
        assembler.finish()
        attributor.finish(emit: collect)
        return box.out
    }

    /// Replay's path through the immediate entry point `attribute(_:)`, as Replay.swift calls it.
    /// `contid replay`'s path (the event pipeline) without holding: every event attributed as the trail stands.
    func immediateReplay(_ lines: [String]) throws -> [UInt32: String] {
        let suite = AttributionTests()
        return try suite.attributions(try suite.replay(lines, holds: false).0.text)
    }

    /// `contid replay`'s path as the command runs it: the pipeline with held attribution on borrowed events.
    func pipelineReplay(_ lines: [String]) throws -> (chains: [UInt32: String], order: [UInt32]) {
        let suite = AttributionTests()
        let text = try suite.replay(lines).0.text
        let order = try text.split(separator: "\n").map { line -> UInt32 in
            let obj = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return UInt32(try #require(obj["serial"] as? Int))
        }
        return (try suite.attributions(text), order)
    }

    /// A SYSCALL event of the fork/exec/exit rules at log time 1700000000.000 + `serial` ms.
    func sc(_ serial: Int, _ syscall: Int, pid: Int, ppid: Int, exit: Int = 0) -> String {
        let result = syscall == 231 ? "" : " success=yes exit=\(exit)"
        let ms = String(format: "%03d", serial % 1000)
        return "type=SYSCALL msg=audit(\(1_700_000_000 + serial / 1000).\(ms):\(serial)): arch=c000003e syscall=\(syscall)\(result) a0=0 a1=0 a2=0 a3=0 items=0 ppid=\(ppid) pid=\(pid) auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm=\"sh\" exe=\"/bin/sh\" key=\"t\""
    }

    func set(_ serial: Int, writer: Int, target: Int, id: Int) -> String {
        "type=CONTAINER_OP msg=audit(1700000000.\(String(format: "%03d", serial)):\(serial)): op=set opid=\(target) contid=\(id) old-contid=-1 pid=\(writer) uid=0 auid=0 ses=1 comm=\"orch\" exe=\"/o\" res=1"
    }

    /// 500 (the orchestrator) starts 600 in container 42.
    var container42: [String] {
        [sc(10, 59, pid: 500, ppid: 1), sc(11, 57, pid: 500, ppid: 1, exit: 600), set(12, writer: 500, target: 600, id: 42),
         sc(13, 59, pid: 600, ppid: 500)]
    }

    @Test func aSubshellFirstSeenInItsChildsPPIDGivesTheChildItsCreatorsChain() throws {
        let lines = container42 + [
            sc(20, 57, pid: 600, ppid: 500, exit: 601),   // 600 forks the subshell 601
            sc(21, 59, pid: 602, ppid: 601),              // which forked 602 at once: 602 runs first
            sc(22, 57, pid: 601, ppid: 600, exit: 602),   // the subshell's own first record
            sc(23, 257, pid: 602, ppid: 601, exit: 3),
        ]
        let expected: [UInt32: String] = [10: "", 11: "", 12: "", 13: "42", 20: "42", 21: "42", 22: "42", 23: "42"]
        #expect(try immediateReplay(lines) == expected)
        let a = TrailAttributor()
        let got = heldReplay(lines, a)
        #expect(got.chains == expected)
        #expect(a.eventsHeld == 0)  // the clone of 601 named it: nothing waits
    }

    @Test func aPidReusedRightAfterExitDoesNotInheritTheDeadProcessesContainer() throws {
        let lines = container42 + [
            sc(20, 231, pid: 600, ppid: 500),             // 600 (in 42) ends
            sc(21, 57, pid: 500, ppid: 1, exit: 600),     // and its pid is reused at once by a subshell of 500
            sc(22, 59, pid: 601, ppid: 600),              // that forked 601 at once
            sc(23, 57, pid: 600, ppid: 500, exit: 601),
            sc(24, 257, pid: 601, ppid: 600, exit: 3),
        ]
        let expected: [UInt32: String] = [10: "", 11: "", 12: "", 13: "42", 20: "42", 21: "", 22: "", 23: "", 24: ""]
        #expect(try immediateReplay(lines) == expected)
        #expect(heldReplay(lines, TrailAttributor()).chains == expected)
    }

    @Test func whenTheSubshellsCreationIsLateTooHeldAttributionWaitsForTheRecordThatNamesIt() throws {
        let lines = container42 + [
            sc(20, 59, pid: 602, ppid: 601),              // nothing named 601 yet
            sc(21, 59, pid: 700, ppid: 500),              // an unrelated process waits behind it (order is kept)
            sc(22, 57, pid: 601, ppid: 600, exit: 602),   // the subshell's own record names its parent
            sc(23, 57, pid: 600, ppid: 500, exit: 601),   // and its creator's clone comes last
            sc(24, 257, pid: 602, ppid: 601, exit: 3),
        ]
        let expected: [UInt32: String] = [10: "", 11: "", 12: "", 13: "42", 20: "42", 21: "", 22: "42", 23: "42", 24: "42"]
        let a = TrailAttributor()
        let got = heldReplay(lines, a)
        #expect(got.chains == expected)
        #expect(got.order == [10, 11, 12, 13, 20, 21, 22, 23, 24])
        #expect(a.eventsHeld == 3)  // 20, 21 and 22, whose record named 601
        #expect(a.heldUnresolved == 0)
        let piped = try pipelineReplay(lines)
        #expect(piped.chains == expected)
        #expect(piped.order == got.order)
        // Without holding, only the event before the naming record is lost; the subshell and its
        // child are moved under 600 when it is named, so every later event is exact.
        var immediate = expected
        immediate[20] = ""
        #expect(try immediateReplay(lines) == immediate)
    }

    @Test func aReusedPidsLateCreationIsWaitedForAndNeverInheritsTheDeadProcess() throws {
        let lines = container42 + [
            sc(20, 231, pid: 600, ppid: 500),             // 600 (in 42) ends
            sc(21, 59, pid: 601, ppid: 600),              // a child of the NEW 600, whose clone records come later
            sc(22, 57, pid: 600, ppid: 500, exit: 601),
            sc(23, 57, pid: 500, ppid: 1, exit: 600),
            sc(24, 257, pid: 601, ppid: 600, exit: 3),
        ]
        let expected: [UInt32: String] = [10: "", 11: "", 12: "", 13: "42", 20: "42", 21: "", 22: "", 23: "", 24: ""]
        let a = TrailAttributor()
        #expect(heldReplay(lines, a).chains == expected)
        #expect(a.eventsHeld == 2)  // 21, and 22 that named the new 600
        #expect(try pipelineReplay(lines).chains == expected)
        var immediate = expected
        immediate[21] = "42"
        #expect(try immediateReplay(lines) == immediate)
    }

    @Test func anAncestorTheTrailNeverNamesIsWaitedForOnlyUntilTheWindowCloses() {
        var lines = container42 + [sc(20, 59, pid: 900, ppid: 899)]  // 899 started before the trail
        for i in 0..<30 { lines.append(sc(100 * i + 100, 257, pid: 600, ppid: 500, exit: 3)) }
        let a = TrailAttributor(holdMilliseconds: 1000)
        let got = heldReplay(lines, a)
        #expect(got.chains[20] == "")
        let later: [UInt32] = (0..<30).map { UInt32(100 * $0 + 100) }
        #expect(got.order == [10, 11, 12, 13, 20] + later)
        // Held from 20 until the first event more than 1000 ms later (serial 1100) arrived.
        #expect(a.eventsHeld == 12)
        #expect(a.heldUnresolved == 1)
        // Or until holdLimit events wait.
        let b = TrailAttributor(holdLimit: 3)
        _ = heldReplay(lines, b)
        #expect(b.eventsHeld == 4)
        #expect(b.heldUnresolved == 1)
    }

    /// laurel's trace of `( /bin/echo foo | /bin/sed -e 's/foo/bar/' ) | /bin/grep bar`, each event's
    /// lines by serial in the order recorded: 71505 runs the script, 71506 is the subshell (it
    /// never execs) that forks 71508 (echo) and 71509 (sed); 71507 is grep.
    func shellTrace() throws -> [(serial: UInt32, lines: [String])] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("shared/corpus/laurel/shell-proc-trace-reordered.txt").path
        var events: [(serial: UInt32, lines: [String])] = []
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") where !line.hasPrefix("#") {
            let serial = try #require(line.split(separator: ":").dropFirst().first.flatMap { UInt32($0.prefix { $0 != ")" }) })
            if let i = events.firstIndex(where: { $0.serial == serial }) { events[i].lines.append(String(line)) }
            else { events.append((serial, [String(line)])) }
        }
        return events
    }

    /// The trace with the events of `late` moved to its end, renumbered in their new order as the
    /// kernel numbers them (an event's serial is taken when its first record is written), and
    /// 71432 (which runs the script) registered in container 7 first. Returns the lines and the
    /// serials of the subshell's records and of its children's execs, renumbered.
    func shellTrace(late: [UInt32]) throws -> (lines: [String], renumbered: [UInt32: UInt32]) {
        let events = try shellTrace()
        let order = events.filter { !late.contains($0.serial) } + late.map { s in events.first { $0.serial == s }! }
        var lines = ["type=CONTAINER_OP msg=audit(1682609045.500:29236): op=set opid=71432 contid=7 old-contid=-1 pid=3505 uid=0 auid=1000 ses=3 comm=\"sh\" exe=\"/bin/sh\" res=1"]
        var renumbered: [UInt32: UInt32] = [:]
        for (i, e) in order.enumerated() {
            let serial = UInt32(29237 + i)
            renumbered[e.serial] = serial
            lines += e.lines.map { $0.replacingOccurrences(of: ":\(e.serial)):", with: ":\(serial)):") }
        }
        return (lines, renumbered)
    }

    @Test func aRealSubshellsDescendantsCarryTheChainWhateverOrderTheirRecordsComeIn() throws {
        // Every event of the script is in 7: all of its processes descend from 71432.
        var expected: [UInt32: String] = [29236: ""]
        for s in UInt32(29237)...29245 { expected[s] = "7" }
        // As recorded; then the subshell's clone records (29241, 29243) after its children's
        // execs (29244, 29245): the grandchildren's records before their parent's own first one.
        for late: [UInt32] in [[], [29241, 29243]] {
            let (lines, _) = try shellTrace(late: late)
            #expect(try immediateReplay(lines) == expected, "late: \(late)")
            #expect(heldReplay(lines, TrailAttributor()).chains == expected, "late: \(late)")
            #expect(try pipelineReplay(lines).chains == expected, "late: \(late)")
        }
        // And the clone that created the subshell (29239) late too: nothing names 71506 before
        // its children's execs. Held attribution waits for its own record; immediate loses both execs.
        let (lines, renumbered) = try shellTrace(late: [29241, 29243, 29239])
        let a = TrailAttributor()
        #expect(heldReplay(lines, a).chains == expected)
        #expect(a.eventsHeld == 3)  // 71508's and 71509's execs, and 71506's clone that named its parent
        #expect(try pipelineReplay(lines).chains == expected)
        var immediate = expected
        immediate[renumbered[29244]!] = ""
        immediate[renumbered[29245]!] = ""
        #expect(try immediateReplay(lines) == immediate)
    }

    @Test func generatedTraceWithLateCreationsIsExactWithHeldAttribution() throws {
        var g = TraceGenerator(seed: 0x5EED_C0DE, lateCreation: true)
        g.run(processes: 10_000, containers: 50)
        #expect(g.processesCreated == 10_000)
        #expect(g.truth.count == 33_661)
        #expect(g.lateCreations == 911)
        #expect(g.subshells == 911)
        #expect(g.reusesAfterExit == 2536)
        let a = TrailAttributor()
        let got = heldReplay(g.lines, a)
        #expect(got.printedTwice == 0)
        #expect(got.order == got.order.sorted())
        #expect(got.chains.count == g.truth.count)
        #expect(g.mismatches(got.chains).wrong == 0)
        // Each grandchild's first event waited, with the subshell's record that named its parent.
        #expect(a.eventsHeld == 2 * 911)
        #expect(a.heldUnresolved == 0)
        #expect(a.processesRelinked == 0)
        // Without holding, the events before each naming record are lost (in containers: 502);
        // moving the subshells when they are named keeps every later event exact.
        let immediate = try immediateReplay(g.lines)
        #expect(immediate.count == g.truth.count)
        #expect(g.mismatches(immediate).wrong == 502)
        // `contid replay` holds on the pipeline's borrowed events: every event exact, in trail order.
        let piped = try pipelineReplay(g.lines)
        #expect(piped.chains.count == g.truth.count)
        #expect(piped.order.count == g.truth.count)
        #expect(g.mismatches(piped.chains).wrong == 0)
        #expect(g.mismatches(piped.chains).missing == 0)
        #expect(piped.order == got.order)
    }
}
