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
                   rec("SYSCALL", 603, t: "1700000002.500")]
        // 602 completed by EOE; 601 waits: the clock passed 2.000 s after it, but only two events came after it.
        #expect(assemble(log.joined(separator: "\n"), finish: false).0 == ["602:SYSCALL"])
        // Four events after it: 601 timed out.
        let more = log + [rec("SYSCALL", 604, t: "1700000002.500"), rec("SYSCALL", 605, t: "1700000002.500")]
        #expect(assemble(more.joined(separator: "\n"), finish: false).0 == ["602:SYSCALL", "601:SYSCALL"])
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

/// go-libaudit's reassembler fixture for out-of-order records (testdata/out_of_order.log of
/// github.com/elastic/go-libaudit, Apache-2.0; records reproduced as data): serial 61 is
/// stamped 7.8 s after 60, and a PATH record of 60 comes after 61's SYSCALL. go-libaudit's
/// test expects 5 events (58: 2 records, 59: 5, 60: 5, 61: 4, 62: 1) and nothing lost.
@Suite struct StragglerAfterClockJumpTests {
    static let outOfOrderLog = """
        type=SYSCALL msg=audit(1492037289.295:58): arch=c000003e syscall=42 success=no exit=-115 a0=6 a1=7ffed2893080 a2=10 a3=fe items=0 ppid=1 pid=1172 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="google_accounts" exe=2F7573722F62696E2F707974686F6E322E373B3538643163636662202864656C6574656429 subj=system_u:system_r:unconfined_service_t:s0 key=(null)
        type=SOCKADDR msg=audit(1492037289.295:58): saddr=02000050A9FEA9FE0000000000000000
        type=SYSCALL msg=audit(1492037291.036:59): arch=c000003e syscall=59 success=yes exit=0 a0=1522170 a1=1506120 a2=14faeb0 a3=7ffcc4582df0 items=2 ppid=12041 pid=13393 auid=1000 uid=1000 gid=1001 euid=1000 suid=1000 fsuid=1000 egid=1001 sgid=1001 fsgid=1001 tty=pts1 ses=802 comm="grep" exe="/usr/bin/grep" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key="user_commands"
        type=EXECVE msg=audit(1492037291.036:59): argc=3 a0="grep" a1="--color=auto" a2="mapping"
        type=CWD msg=audit(1492037291.036:59):  cwd="/home/andrew_kroh"
        type=PATH msg=audit(1492037291.036:59): item=0 name="/usr/bin/grep" inode=2512 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:bin_t:s0 objtype=NORMAL
        type=PATH msg=audit(1492037291.036:59): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=19161168 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:ld_so_t:s0 objtype=NORMAL
        type=SYSCALL msg=audit(1492037291.038:60): arch=c000003e syscall=59 success=yes exit=0 a0=153ad00 a1=1506260 a2=14faeb0 a3=7ffcc4582df0 items=2 ppid=12041 pid=13392 auid=1000 uid=1000 gid=1001 euid=1000 suid=1000 fsuid=1000 egid=1001 sgid=1001 fsgid=1001 tty=pts1 ses=802 comm="cat" exe="/usr/bin/cat" subj=unconfined_u:unconfined_r:unconfined_t:s0-s0:c0.c1023 key="user_commands"
        type=EXECVE msg=audit(1492037291.038:60): argc=2 a0="cat" a1="securitybeat"
        type=CWD msg=audit(1492037291.038:60):  cwd="/home/andrew_kroh"
        type=PATH msg=audit(1492037291.038:60): item=0 name="/usr/bin/cat" inode=3904 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:bin_t:s0 objtype=NORMAL
        type=SYSCALL msg=audit(1492037298.883:61): arch=c000003e syscall=42 success=yes exit=0 a0=15 a1=7ffd83722200 a2=6e a3=ea60 items=1 ppid=1 pid=1229 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="master" exe="/usr/libexec/postfix/master" subj=system_u:system_r:postfix_master_t:s0 key=(null)
        type=PATH msg=audit(1492037291.038:60): item=1 name="/lib64/ld-linux-x86-64.so.2" inode=19161168 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 obj=system_u:object_r:ld_so_t:s0 objtype=NORMAL
        type=SOCKADDR msg=audit(1492037298.883:61): saddr=01007075626C69632F7069636B75700000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000
        type=CWD msg=audit(1492037298.883:61):  cwd="/var/spool/postfix"
        type=SYSCALL msg=audit(1492037298.883:62): arch=c000003e syscall=43 success=yes exit=11 a0=6 a1=0 a2=0 a3=186a0 items=0 ppid=1229 pid=12992 auid=4294967295 uid=89 gid=89 euid=89 suid=89 fsuid=89 egid=89 sgid=89 fsgid=89 tty=(none) ses=4294967295 comm="pickup" exe="/usr/libexec/postfix/pickup" subj=system_u:system_r:postfix_pickup_t:s0 key=(null)
        type=PATH msg=audit(1492037298.883:61): item=0 name="public/pickup" inode=34151428 dev=08:01 mode=0140666 ouid=89 ogid=89 rdev=00:00 obj=system_u:object_r:postfix_public_t:s0 objtype=NORMAL
        """

    func assemble(ordered: Bool) -> ([String], AssemblyCounters) {
        var out: [String] = []
        let a = EventAssembler(ordered: ordered) { v in out.append("\(v.serial):\(v.recordCount)") }
        for line in Self.outOfOrderLog.split(separator: "\n") {
            #expect(Array(line.utf8).withUnsafeBytes { a.push(line: $0) } == nil)
        }
        a.finish()
        return (out, a.counters)
    }

    @Test func aStragglerAfterAJumpOfTheLogClockJoinsItsEvent() {
        for ordered in [false, true] {
            let (events, c) = assemble(ordered: ordered)
            #expect(events == ["58:2", "59:5", "60:5", "61:4", "62:1"], "ordered: \(ordered)")
            #expect(c.events == 5)
            #expect(c.late == 0)
            #expect(c.lost == 0)
        }
    }

    @Test func theIdleClockStillCompletesAnEventWithNoEventAfterIt() {
        // A live stream that goes quiet: no later events come, the idle advance hands it out.
        var out: [UInt32] = []
        let a = EventAssembler { v in out.append(v.serial) }
        _ = Array("type=SYSCALL msg=audit(1700000000.000:7): x=1".utf8).withUnsafeBytes { a.push(line: $0) }
        a.advanceClock(to: AuditTime(seconds: 1700000001, milliseconds: 999))
        #expect(out == [])
        a.advanceClock(to: AuditTime(seconds: 1700000002, milliseconds: 0))
        #expect(out == [7])
    }
}
