import TestSupport
import Testing
@testable import AuditCodec

@Suite struct RecordTests {
    @Test func parsesNodeTypeTimeSerialAndEnrichment() throws {
        let line = "node=testnode type=SYSCALL msg=audit(1795928819.726:244): arch=c000003e syscall=59 success=yes exit=0 pid=7 comm=\"echo\" key=\"cidx\"\u{1D}ARCH=x86_64 SYSCALL=execve AUID=\"unknown(4245)\""
        let r = try AuditRecord(parsing: line)
        #expect(r.node == "testnode")
        #expect(r.type == .syscall)
        #expect(r.time.description == "1795928819.726")
        #expect(r.serial == 244)
        #expect(r.syscall == 59)
        #expect(r.success == true)
        #expect(r.exit == 0)
        #expect(r.pid == 7)
        #expect(r.comm == "echo")
        #expect(r.key == "cidx")
        #expect(r.enrichment == "ARCH=x86_64 SYSCALL=execve AUID=\"unknown(4245)\"")
        #expect(r.enrichedFields.map(\.name) == ["ARCH", "SYSCALL", "AUID"])
        #expect(r.encoded() == Array(line.utf8))
    }

    @Test func unknownTypesRoundTripByNumber() throws {
        let r = try AuditRecord(parsing: "type=UNKNOWN[1420] msg=audit(1661853391.646:4486226): subj_apparmor=unconfined")
        #expect(r.type.rawValue == 1420)
        #expect(r.typeName == "UNKNOWN[1420]")
        #expect(AuditRecordType(name: "UNKNOWN[2900]") == .containerOp)
        #expect(AuditRecordType.containerOp.name == "CONTAINER_OP")
        #expect(AuditRecordType(rawValue: 2999).name == "UNKNOWN[2999]")
    }

    @Test func hexEncodedAndNullValuesDecode() throws {
        let r = try AuditRecord(parsing: "type=SYSCALL msg=audit(1.000:1): comm=2F746D702F64206972 key=(null) exe=\"/bin/x\"")
        #expect(r.comm == "/tmp/d ir")
        #expect(r.key == nil)
        #expect(r.field("key")?.form == .null)
        #expect(r.exe == "/bin/x")
    }

    @Test func userMessageFieldsInsideMsgQuotesAreReachable() throws {
        let r = try AuditRecord(parsing: "type=USER_ACCT msg=audit(1615113648.981:15220): pid=9460 uid=1000 auid=1000 ses=1 msg='op=PAM:accounting grantors=pam_permit acct=\"user\" exe=\"/usr/bin/sudo\" hostname=? addr=? terminal=/dev/pts/1 res=success'")
        #expect(r.pid == 9460)
        #expect(r["res"] == "success")
        #expect(r.exe == "/usr/bin/sudo")
        #expect(r.field("msg")?.form == .singleQuoted)
    }

    @Test func kernelAndAuditdQuirksRoundTrip() throws {
        for line in [
            "type=CWD msg=audit(1170021493.977:293):  cwd=\"/var/spool/postfix\"",
            "type=EOE msg=audit(1640027821.949:151316): ",
            "type=EOE msg=audit(1640027821.949:151316):",
            "type=AVC msg=audit(1170021493.977:293): avc:  denied  { read write } for  pid=13010 comm=\"pickup\"",
            "type=DAEMON_START msg=audit(1450875964.131:8728) auditd start, ver=2.4.5 format=raw",
            "type=SYSCALL msg=audit(1.000:1): subj==unconfined key=\"a b",
            "type=USER msg=audit(1.000:3): msg='caf\u{E9} \u{1F600}'",
            "type=SOCKADDR msg=audit(1.000:2): saddr=100000000000000000000000\u{1D}SADDR={ saddr_fam=netlink nlnk-fam=16 nlnk-pid=0 }",
        ] {
            let r = try AuditRecord(parsing: line)
            #expect(r.encoded() == Array(line.utf8), "\(line)")
        }
        let d = try AuditRecord(parsing: "type=DAEMON_START msg=audit(1450875964.131:8728) auditd start, ver=2.4.5 format=raw")
        #expect(d.header.hasColon == false)
        #expect(d.type.isDaemonRecord)
    }

    @Test func badLinesSayWhatAndWhere() {
        func error(_ s: String) -> String? {
            do { _ = try AuditRecord(parsing: s); return nil } catch { return error.description }
        }
        #expect(error("") == "empty line")
        #expect(error("hello") == "column 1: expected \"type=NAME\" (optionally after \"node=NAME \")")
        #expect(error("type=SYSCALL audit(1.000:1): x") == "column 13: expected \" msg=audit(SECONDS.MILLIS:SERIAL)\" after the type")
        #expect(error("type=SYSCALL msg=audit(1.00:1): x") == "column 26: bad timestamp: expected three digits of milliseconds and ':'")
        #expect(error("type=SYSCALL msg=audit(1.000:99999999999): x") == "column 40: bad timestamp: expected a serial number (0-4294967295) and ')'")
        #expect(error("type=SYSCALL msg=audit(1.000:080): x") == "column 30: bad timestamp: serial with a leading zero")
        #expect(error("type=sys msg=audit(1.000:1): x") == "column 6: record type name must be upper-case letters, digits and '_' or UNKNOWN[n]")
        #expect(error("type=UNKNOWN[x] msg=audit(1.000:1): x") == "column 14: record type name must be upper-case letters, digits and '_' or UNKNOWN[n]")
    }

    @Test func kernelPayloadsParseWithTheirNetlinkType() throws {
        let payload = Array("audit(1795928780.114:125): arch=c000003e syscall=59".utf8)
        let h = try payload.withUnsafeBytes { try RecordScanner.scanKernelPayload($0, type: .syscall).get() }
        #expect(h.serial == 125)
        #expect(h.time.description == "1795928780.114")
        #expect(h.bodyStart == 26)
    }

    @Test func untrustedStringsEncodeAsTheKernelDoes() {
        #expect(AuditText.untrusted("/usr/bin/runc") == "\"/usr/bin/runc\"")
        #expect(AuditText.untrusted("/tmp/d ir") == "2F746D702F64206972")
        #expect(AuditText.untrusted("q\"uote") == "7122756F7465")
        #expect(AuditText.untrusted("ünï") == "C3BC6EC3AF")
        #expect(AuditText.unhex(Array("2f74".utf8)) == [0x2F, 0x74])
        #expect(AuditText.unhex(Array("2f7".utf8)) == nil)
    }
}

@Suite struct PayloadTests {
    @Test func longExecveArgumentsSplitOverRecordsAreReassembled() throws {
        let lines = try Corpus.lines("laurel/record-execve-long.txt").map { try AuditRecord(parsing: $0) }
        let args = try ExecveArguments.decode(lines)
        #expect(args.count == 2)
        #expect(String(decoding: args[0], as: UTF8.self) == "/bin/echo")
        #expect(args[1].count == 8192)
        #expect(args[1].first == UInt8(ascii: "b"))
        #expect(args[1].dropFirst().prefix(3).elementsEqual("aaa".utf8))
    }

    @Test func execveArgumentsDecodeHexAndQuotes() throws {
        let r = try AuditRecord(parsing: "type=EXECVE msg=audit(1.000:1): argc=4 a0=\"/bin/echo\" a1=68656C6C6F20776F726C64 a2=7122756F7465 a3=\"plain\"")
        let args = try ExecveArguments.decode([r]).map { String(decoding: $0, as: UTF8.self) }
        #expect(args == ["/bin/echo", "hello world", "q\"uote", "plain"])
        let bad = try AuditRecord(parsing: "type=EXECVE msg=audit(1.000:1): argc=2 a0=\"x\"")
        #expect(throws: ExecveArguments.Failure.missingArgument(1)) { try ExecveArguments.decode([bad]) }
    }

    @Test func proctitleSplitsAtNULs() throws {
        let r = try AuditRecord(parsing: "type=PROCTITLE msg=audit(1.000:1): proctitle=617564697463746C002D620038313932")
        #expect(Proctitle.arguments(r) == ["auditctl", "-b", "8192"])
        let q = try AuditRecord(parsing: "type=PROCTITLE msg=audit(1.000:1): proctitle=\"bash\"")
        #expect(Proctitle.arguments(q) == ["bash"])
    }

    @Test func socketAddressesDecode() {
        #expect(SocketAddress(hex: "100000000000000000000000") == .netlink(pid: 0, groups: 0))
        #expect(SocketAddress(hex: "02000050C0A80001") == .inet(address: "192.168.0.1", port: 80))
        #expect(SocketAddress(hex: "01002F746D702F7300") == .unix(path: "/tmp/s"))
        #expect(SocketAddress(hex: "010000616263") == .unix(path: "@abc"))
    }
}
