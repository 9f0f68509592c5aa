import Testing
@testable import AuditCodec

/// Fixtures for lost, out-of-order, duplicated and rolled-over sequences, with the
/// exact events and counters each must give.
@Suite struct AssemblerTests {
    /// Feeds lines, returns the events handed out (as "serial:TYPE,TYPE" strings) and the counters.
    func assemble(_ text: String, timeout: UInt64 = 2000, finish: Bool = true) -> ([String], AssemblyCounters) {
        var out: [String] = []
        let a = EventAssembler(timeoutMilliseconds: timeout) { v in
            let e = v.makeEvent()
            out.append("\(e.node.map { $0 + "/" } ?? "")\(e.serial)\(e.isLate ? "(late)" : ""):" + e.records.map(\.typeName).joined(separator: ","))
        }
        for line in text.split(separator: "\n") {
            let bytes = Array(line.utf8)
            #expect(bytes.withUnsafeBytes { a.push(line: $0) } == nil, "line did not parse: \(line)")
        }
        if finish { a.finish() }
        return (out, a.counters)
    }

    func rec(_ type: String, _ serial: UInt32, t: String = "1700000000.000", node: String? = nil, body: String = "x=1") -> String {
        (node.map { "node=\($0) " } ?? "") + "type=\(type) msg=audit(\(t):\(serial)): \(body)"
    }

    @Test func eoeCompletesAnEventAndTheNextRecordHandsItOut() {
        let log = [rec("SYSCALL", 10), rec("PATH", 10), rec("EOE", 10), rec("SYSCALL", 11)].joined(separator: "\n")
        let (events, c) = assemble(log, finish: false)
        #expect(events == ["10:SYSCALL,PATH"])
        #expect(c.events == 1)
        #expect(c.records == 4)
    }

    @Test func missingSerialsAreCountedAsLost() {
        let log = [100, 101, 103, 106].map { rec("SYSCALL", $0) }.joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["100:SYSCALL", "101:SYSCALL", "103:SYSCALL", "106:SYSCALL"])
        #expect(c.lost == 3)
    }

    @Test func interleavedRecordsOfSeveralEventsAreGroupedBySerial() {
        let log = [rec("SYSCALL", 201), rec("SYSCALL", 202), rec("PATH", 201), rec("SYSCALL", 203),
                   rec("CWD", 202), rec("EOE", 201), rec("PATH", 203), rec("EOE", 203), rec("EOE", 202)].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["201:SYSCALL,PATH", "203:SYSCALL,PATH", "202:SYSCALL,CWD"])
        #expect(c.lost == 0)
        #expect(c.late == 0)
    }

    @Test func outOfOrderStartLowersTheWindowInsteadOfMakingLateEvents() {
        let log = [rec("SYSCALL", 305), rec("SYSCALL", 303), rec("PROCTITLE", 303), rec("PROCTITLE", 305), rec("SYSCALL", 304)].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["303:SYSCALL,PROCTITLE", "304:SYSCALL", "305:SYSCALL,PROCTITLE"])
        #expect(c.lost == 0)
        #expect(c.late == 0)
    }

    @Test func duplicatedRecordsAreDroppedAndCounted() {
        let a = rec("SYSCALL", 401, body: "a=1"), p = rec("PATH", 401, body: "item=0")
        let log = [a, a, p, p, rec("EOE", 401), rec("SYSCALL", 402), a, p].joined(separator: "\n")
        let (events, c) = assemble(log)
        // Two repeats inside the event, two more after it was handed out.
        #expect(events == ["401:SYSCALL,PATH", "402:SYSCALL"])
        #expect(c.duplicates == 4)
        #expect(c.late == 0)
    }

    @Test func aRecordAfterItsEventWasHandedOutIsALateEventNotLost() {
        let log = [rec("SYSCALL", 501), rec("EOE", 501), rec("SYSCALL", 502), rec("PATH", 501, body: "item=9")].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["501:SYSCALL", "501(late):PATH", "502:SYSCALL"])
        #expect(c.late == 1)
        #expect(c.events == 3)
    }

    @Test func serialsRollOverAt2To32() {
        let log = [UInt32.max - 1, UInt32.max, 0, 1].map { rec("SYSCALL", $0) }.joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["4294967294:SYSCALL", "4294967295:SYSCALL", "0:SYSCALL", "1:SYSCALL"])
        #expect(c.lost == 0)
        #expect(c.resyncs == 0)
    }

    @Test func aGapAcrossTheRolloverIsLost() {
        let log = [UInt32.max - 1, 1].map { rec("SYSCALL", $0) }.joined(separator: "\n")
        let (_, c) = assemble(log)
        #expect(c.lost == 2)  // 4294967295 and 0
    }

    @Test func incompleteEventsTimeOutOnTheLogClock() {
        let log = [rec("SYSCALL", 601, t: "1700000000.000"), rec("SYSCALL", 602, t: "1700000001.000"), rec("EOE", 602, t: "1700000001.000"),
                   rec("SYSCALL", 603, t: "1700000002.500")].joined(separator: "\n")
        let (events, _) = assemble(log, finish: false)
        // 602 completed by EOE; 601 timed out once the clock passed 2.000 s after it.
        #expect(events == ["602:SYSCALL", "601:SYSCALL"])
    }

    @Test func aGapIsDeclaredLostOnlyAfterTheTimeoutAndUncountedIfItArrives() {
        var (events, c) = assemble([rec("SYSCALL", 700, t: "1700000000.000"), rec("EOE", 700),
                                    rec("SYSCALL", 702, t: "1700000000.100"), rec("EOE", 702),
                                    rec("SYSCALL", 703, t: "1700000003.000")].joined(separator: "\n"), finish: false)
        #expect(c.lost == 1)
        #expect(events == ["700:SYSCALL", "702:SYSCALL"])
        (events, c) = assemble([rec("SYSCALL", 700, t: "1700000000.000"), rec("EOE", 700),
                                rec("SYSCALL", 702, t: "1700000000.100"), rec("EOE", 702),
                                rec("SYSCALL", 703, t: "1700000003.000"), rec("SYSCALL", 701, t: "1700000000.050")].joined(separator: "\n"))
        #expect(c.lost == 0)
        #expect(c.late == 1)
        #expect(events == ["700:SYSCALL", "702:SYSCALL", "701(late):SYSCALL", "703:SYSCALL"])
    }

    @Test func nodesHaveTheirOwnSerialSpaces() {
        let log = [rec("SYSCALL", 5, node: "a"), rec("SYSCALL", 5, node: "b"), rec("PATH", 5, node: "a"), rec("EOE", 5, node: "a"), rec("EOE", 5, node: "b")].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["a/5:SYSCALL,PATH", "b/5:SYSCALL"])
        #expect(c.lost == 0)
    }

    @Test func daemonRecordsUseTheirOwnCounterAndNeverCountGaps() {
        let log = [rec("SYSCALL", 10), rec("DAEMON_START", 9000), rec("SYSCALL", 11), rec("DAEMON_END", 9100)].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["9000:DAEMON_START", "10:SYSCALL", "11:SYSCALL", "9100:DAEMON_END"])
        #expect(c.lost == 0)
    }

    @Test func containerIDFollowingAUserMessageJoinsItsEvent() {
        let log = [rec("USER_CMD", 800), rec("CONTAINER_ID", 800, body: "record=1 contid=7"), rec("SYSCALL", 801)].joined(separator: "\n")
        let (events, _) = assemble(log)
        #expect(events == ["800:USER_CMD,CONTAINER_ID", "801:SYSCALL"])
    }

    @Test func aHugeJumpRestartsTheWindowWithoutCountingLoss() {
        let log = [rec("SYSCALL", 10), rec("SYSCALL", 5_000_000), rec("SYSCALL", 5_000_001), rec("SYSCALL", 12)].joined(separator: "\n")
        let (events, c) = assemble(log)
        #expect(events == ["10:SYSCALL", "5000000:SYSCALL", "5000001:SYSCALL", "12:SYSCALL"])
        #expect(c.lost == 0)
        #expect(c.resyncs == 2)
    }

    @Test func windowPressureCompletesOldEventsOfALogWithoutEOE() {
        // 10,000 dense events of two records each, no EOE, all at the same time: none can time out.
        var lines: [String] = []
        for s in 1...10_000 { lines.append(rec("SYSCALL", UInt32(s))); lines.append(rec("PROCTITLE", UInt32(s))) }
        var count = 0
        var twoRecordEvents = 0
        let a = EventAssembler { v in count += 1; if v.recordCount == 2 { twoRecordEvents += 1 } }
        for l in lines { _ = Array(l.utf8).withUnsafeBytes { a.push(line: $0) } }
        #expect(a.inFlight <= 4096)
        a.finish()
        #expect(count == 10_000)
        #expect(twoRecordEvents == 10_000)
        #expect(a.counters.lost == 0)
    }
}

/// Ordered mode (offline replay): events come out in serial order per node.
@Suite struct OrderedAssemblerTests {
    func assemble(_ lines: [String]) -> [String] {
        var out: [String] = []
        let a = EventAssembler(ordered: true) { v in
            let e = v.makeEvent()
            out.append("\(e.serial):" + e.records.map(\.typeName).joined(separator: ","))
        }
        for l in lines { _ = Array(l.utf8).withUnsafeBytes { a.push(line: $0) } }
        a.finish()
        return out
    }
    func rec(_ type: String, _ serial: Int, t: String = "1700000000.000") -> String {
        "type=\(type) msg=audit(\(t):\(serial)): x=1"
    }

    @Test func aCompleteEventWaitsForTheOpenOnesBeforeIt() {
        #expect(assemble([rec("SYSCALL", 201), rec("SYSCALL", 202), rec("PATH", 201), rec("SYSCALL", 203),
                          rec("CWD", 202), rec("EOE", 201), rec("PATH", 203), rec("EOE", 203), rec("EOE", 202)])
                == ["201:SYSCALL,PATH", "202:SYSCALL,CWD", "203:SYSCALL,PATH"])
    }

    @Test func aStandaloneRecordDoesNotOvertakeAnEventWithoutEOE() {
        // auditd logs have no EOE: the exec event before a CONTAINER_OP must come out first.
        #expect(assemble([rec("SYSCALL", 1), rec("PROCTITLE", 1), rec("CONTAINER_OP", 2), rec("SYSCALL", 3)])
                == ["1:SYSCALL,PROCTITLE", "2:CONTAINER_OP", "3:SYSCALL"])
    }

    @Test func timedOutEventsComeOutBeforeLaterCompleteOnes() {
        #expect(assemble([rec("SYSCALL", 601, t: "1700000000.000"), rec("SYSCALL", 602, t: "1700000001.000"),
                          rec("EOE", 602, t: "1700000001.000"), rec("SYSCALL", 603, t: "1700000002.500")])
                == ["601:SYSCALL", "602:SYSCALL", "603:SYSCALL"])
    }
}
