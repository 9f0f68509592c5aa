import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import TestSupport
import Testing

@Suite struct RegistrationProtocolTests {
    @Test func requestsRoundTrip() throws {
        let requests: [RegistrationRequest] = [
            .set(pid: 812, id: "123456", forParent: true), .set(pid: 9, id: "-1", forParent: false),
            .get(pid: 1), .capContID(pid: 77, value: true, forParent: true), .capContID(pid: 77, value: false, forParent: false),
            .ps, .status,
            .set(pid: 5, id: "7", forParent: true, new: true,
                 labels: try ContainerLabels(validating: [("runtime", "runc"), ("name", "web 1\nx"), ("empty", "")])),
        ]
        for r in requests { #expect(try RegistrationRequest.decode(r.encoded()) == r) }
        #expect(String(decoding: RegistrationRequest.set(pid: 812, id: "7", forParent: true).encoded(), as: UTF8.self) == "set 812 7 parent")
        let labelled = RegistrationRequest.set(pid: 812, id: "7", forParent: true, new: true,
                                               labels: try ContainerLabels(validating: [("runtime", "runc"), ("team", "pay")]))
        #expect(labelled.description == "set 812 7 new parent\nruntime=runc,team=pay")
        #expect(try RegistrationRequest.decode(Array("set 812 7 parent new".utf8)) == .set(pid: 812, id: "7", forParent: true, new: true))
    }

    @Test func labelsThatBreakTheRulesAreRefusedWithTheirErrno() {
        func refusal(_ text: String) -> String? {
            do { _ = try RegistrationRequest.decode(Array(text.utf8)); return nil } catch { return error.description }
        }
        #expect(refusal("set 5 7\nruntime") == "EINVAL: label \"runtime\" is not key=value")
        #expect(refusal("set 5 7\na=b=c") == "EINVAL: label \"a=b=c\" holds a second '='; label keys and values may not contain ',' or '='")
        #expect(refusal("set 5 7\na=1,a=2") == "EINVAL: label key \"a\" given twice")
        #expect(refusal("set 5 7\n=v") == "EINVAL: label with an empty key (=v)")
        #expect(refusal("get 5\na=1") == "EINVAL: only set carries labels (after a newline)")
        let big = "set 5 7\nk=" + String(repeating: "v", count: 4095)
        #expect(refusal(big) == "E2BIG: labels of 4097 bytes (as k=v,k=v); at most 4096")
        #expect(refusal("set 5 7\nk=" + String(repeating: "v", count: 4094)) == nil)
        #expect(refusal(String(repeating: "a", count: 5000)) == "E2BIG: request of 5000 bytes; at most 4608 (labels: at most 4096)")
    }

    @Test func labelValidationNamesTheBadCharacter() {
        #expect(throws: ContainerFailure(.EINVAL, "label key \"a,b\" holds ','; label keys and values may not contain ',' or '='")) {
            try ContainerLabels(validating: [("a,b", "1")])
        }
        #expect(throws: ContainerFailure(.EINVAL, "label value \"x=y\" holds '='; label keys and values may not contain ',' or '='")) {
            try ContainerLabels(validating: [("a", "x=y")])
        }
    }

    @Test func malformedRequestsSayWhatIsWrong() {
        func reason(_ text: String) -> String? {
            do { _ = try RegistrationRequest.decode(Array(text.utf8)); return nil } catch { return error.reason }
        }
        #expect(reason("") == "empty request")
        #expect(reason("set 12") == "usage: set PID ID [new] [parent] (then a newline and k=v,k=v labels)")
        #expect(reason("set x 7") == "\"x\" is not a process ID")
        #expect(reason("set 0 7") == "\"0\" is not a process ID")
        #expect(reason("set 5 7 mother") == "unexpected \"mother\" after set")
        #expect(reason("capcontid 5 2") == "usage: capcontid PID 0|1 [parent]")
        #expect(reason("frobnicate") == "unknown request \"frobnicate\"; expected set, get, capcontid, ps or status")
        #expect(reason(String(repeating: "a", count: 600)) == "request line of 600 bytes; at most 512")
        #expect(reason("set 5 7 new new") == "unexpected \"new\" after set")
        #expect(reason("capcontid 5 1 new") == "unexpected \"new\" after capcontid")
    }

    @Test func repliesRoundTrip() throws {
        let replies: [RegistrationReply] = [
            .ok("4,^2,^1"), .ok(""), .error(errno: "EBUSY", message: "process 812 has 1 child; register a container's first process before it forks"),
            .row(ProcessRow(pid: 10, ppid: 1, chain: "7,^3", capContID: true, comm: "my prog")),
            .info(id: "7", labels: try ContainerLabels(validating: [("runtime", "runc"), ("name", "a b")])),
            .info(id: "8", labels: ContainerLabels()),
        ]
        for r in replies { #expect(try RegistrationReply.decode(r.encoded()) == r) }
        #expect(RegistrationReply.error(errno: "EPERM", message: "no").description == "err EPERM no")
    }

    @Test func treeShowsChildrenUnderParents() {
        let rows = [
            ProcessRow(pid: 1, ppid: 0, chain: "-1", capContID: false, comm: "init"),
            ProcessRow(pid: 20, ppid: 1, chain: "7", capContID: false, comm: "sh"),
            ProcessRow(pid: 21, ppid: 20, chain: "8,^7", capContID: false, comm: "app"),
            ProcessRow(pid: 30, ppid: 1, chain: "-1", capContID: true, comm: "runc"),
        ]
        #expect(ProcessRow.tree(rows) == ["1 init [-1]", "|-- 20 sh [7]", "|   `-- 21 app [8,^7]", "`-- 30 runc [-1] capcontid"])
    }

    @Test func treeShowsLabelsAtEachContainersFirstProcess() throws {
        let rows = [
            ProcessRow(pid: 1, ppid: 0, chain: "-1", capContID: false, comm: "init"),
            ProcessRow(pid: 20, ppid: 1, chain: "7", capContID: false, comm: "sh"),
            ProcessRow(pid: 22, ppid: 20, chain: "7", capContID: false, comm: "cat"),
            ProcessRow(pid: 21, ppid: 20, chain: "8,^7", capContID: false, comm: "app"),
        ]
        let labels = ["7": try ContainerLabels(validating: [("name", "outer")]), "8": try ContainerLabels(validating: [("name", "inner")])]
        #expect(ProcessRow.tree(rows, labels: labels)
                == ["1 init [-1]", "`-- 20 sh [7] {name=outer}", "    |-- 21 app [8,^7] {name=inner}", "    `-- 22 cat [7]"])
    }
}

@Suite struct RuleParserTests {
    @Test func watchSyscallAndContidRules() throws {
        let text = """
            # comment
            -D
            -b 8192
            -w /etc/shadow -p wa -k shadow
            -a always,exit -F arch=b64 -S openat,execve -F auid>=1000 -F auid!=unset -k exec
            -a exit,always -F dir=/tmp -F perm=wa -F contid=123459 -F key=tmpcontainerid

            """
        let (lines, errors) = RuleParser.parse(text, file: "10.rules")
        #expect(errors.isEmpty, "\(errors)")
        #expect(lines.count == 5)
        #expect(lines[0].command == .deleteAll)
        #expect(lines[1].command == .backlogLimit(8192))
        guard case let .add(watch, prepend) = lines[2].command else { Issue.record("not a rule"); return }
        #expect(!prepend)
        #expect(watch.rule.list.rawValue == 4 && watch.rule.action == .always && watch.rule.syscalls == .all)
        #expect(watch.rule.fields == [
            .init(.init(rawValue: 105), .init(rawValue: 0x4000_0000)!, .string("/etc/shadow")),
            .init(.init(rawValue: 106), .init(rawValue: 0x4000_0000)!, .number(0xA)),
            .init(.init(rawValue: 210), .init(rawValue: 0x4000_0000)!, .string("shadow")),
        ])
        guard case let .add(exec, _) = lines[3].command else { Issue.record("not a rule"); return }
        #expect(exec.rule.syscalls == .init([257, 59]))
        #expect(exec.rule.fields.first == .init(.init(rawValue: 11), .init(rawValue: 0x4000_0000)!, .number(0xC000_003E)))
        #expect(exec.rule.fields[1] == .init(.init(rawValue: 9), .init(rawValue: 0x6000_0000)!, .number(1000)))
        #expect(exec.rule.fields[2] == .init(.init(rawValue: 9), .init(rawValue: 0x3000_0000)!, .number(UInt32.max)))
        guard case let .add(filtered, _) = lines[4].command else { Issue.record("not a rule"); return }
        // contid is contidd's own: not in the kernel rule, kept as a predicate.
        #expect(filtered.contid == [ContainerPredicate(.equal, ContainerID(123459))])
        #expect(filtered.key == "tmpcontainerid")
        #expect(filtered.rule.fields.map(\.kind.rawValue) == [107, 106, 210])
    }

    @Test func badLinesAreReportedWithFileAndLine() {
        let text = """
            -w /etc/passwd -p wa -k ok
            -a always,exit -F contd=5 -k x
            -a always,exti -S openat
            -a always,exit -S opneat
            -a always,exit -F contid=5
            -w relative -k x
            -e 2
            -a never,exit -F contid=5 -k x
            """
        let (lines, errors) = RuleParser.parse(text, file: "rules.d/10-base.rules")
        #expect(lines.count == 1)
        #expect(errors.map(\.description) == [
            "rules.d/10-base.rules:2: unknown field \"contd\"; did you mean \"contid\"?",
            "rules.d/10-base.rules:3: unknown list or action \"exti\"; did you mean \"exit\"?",
            "rules.d/10-base.rules:4: unknown syscall \"opneat\" for x86_64; did you mean \"openat\"?",
            "rules.d/10-base.rules:5: a rule with -F contid needs -k KEY: contidd matches events to the rule by its key",
            "rules.d/10-base.rules:6: -w needs an absolute path, not \"relative\"",
            "rules.d/10-base.rules:7: option -e is not supported here; use -a, -A, -w, -p, -S, -F, -k, -D or -b",
            "rules.d/10-base.rules:8: contid on a never rule cannot be given to the kernel; use an always rule with -k and filter on the key",
        ])
    }

    /// `-w` and `-F path=` on a directory become AUDIT_DIR fields, as auditctl decides by stat.
    @Test func watchOnADirectoryBecomesADirField() throws {
        let (lines, errors) = RuleParser.parse("-w /etc -p wa -k etc\n-a always,exit -F path=/etc/passwd -k pw\n", file: "f")
        #expect(errors.isEmpty, "\(errors)")
        let rules = lines.compactMap { line -> AuditRule? in
            if case let .add(parsed, _) = line.command { return parsed.rule.watchingDirectories(where: { $0 == "/etc" }) }
            return nil
        }
        #expect(rules.map { $0.fields.map(\.kind) } == [[.directory, .permission, .key], [.watch, .key]])
        #expect(rules[0].fields[0].value == .string("/etc"))
    }

    @Test func containerFilterAdmitsByKeyAndChain() throws {
        var filter = ContainerRuleFilter()
        let (lines, _) = RuleParser.parse("-a always,exit -S openat -F contid=7 -k mine\n", file: "f")
        guard case let .add(rule, _) = lines[0].command else { Issue.record("no rule"); return }
        filter.add(rule)
        #expect(filter.admits(key: "mine", chain: ContainerChain([8, 7])))
        #expect(!filter.admits(key: "mine", chain: ContainerChain([8])))
        #expect(!filter.admits(key: "mine", chain: .unset))
        #expect(filter.admits(key: "other", chain: .unset))
        #expect(filter.admits(key: nil, chain: .unset))
    }
}

@Suite struct HostLogTests {
    func temporaryDirectory() -> String { makeTemporaryDirectory("hostlog") }
    func read(_ path: String) -> String { fileContents(path) }

    @Test func ownUserMessagesAreUnwrappedOthersAreNot() throws {
        let wrapped = try AuditRecord(parsing: "type=UNKNOWN[2900] msg=audit(1700000000.123:42): pid=500 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=812 contid=7 old-contid=-1 pid=800 uid=0 auid=1000 ses=3 comm=\"sh\" exe=\"/usr/bin/dash\" res=1'")
        let own = try #require(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 500))
        #expect(own.line == "type=CONTAINER_OP msg=audit(1700000000.123:42): op=set opid=812 contid=7 old-contid=-1 pid=800 uid=0 auid=1000 ses=3 comm=\"sh\" exe=\"/usr/bin/dash\" res=1")
        // The same type from another sender is not contid's record: it stays as the kernel wrote it.
        #expect(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 501) == nil)
        let user = try AuditRecord(parsing: "type=USER msg=audit(1700000000.123:43): pid=500 uid=0 auid=0 ses=1 msg='op=x res=1'")
        #expect(HostLogForm.unwrapOwnRecord(user, ownPID: 500) == nil)
    }

    @Test func enrichedAppendsInterpretedFieldsAfter0x1D() throws {
        var names = AccountNames(user: { $0 == 0 ? "root" : nil }, group: { $0 == 0 ? "root" : nil })
        let r = try AuditRecord(parsing: "type=SYSCALL msg=audit(1700000000.123:44): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=2 auid=4245 uid=0 gid=0 euid=0 key=\"k\"")
        let line = String(decoding: HostLogForm.line(r, format: .enriched, names: &names), as: UTF8.self)
        #expect(line == r.line + "\u{1D}ARCH=x86_64 SYSCALL=execve AUID=\"unknown(4245)\" UID=\"root\" GID=\"root\" EUID=\"root\"")
        #expect(String(decoding: HostLogForm.line(r, format: .raw, names: &names), as: UTF8.self) == r.line)
        let cwd = try AuditRecord(parsing: "type=CWD msg=audit(1700000000.123:44): cwd=\"/\"")
        #expect(String(decoding: HostLogForm.line(cwd, format: .enriched, names: &names), as: UTF8.self) == cwd.line)
        var unset = AccountNames(user: { _ in nil }, group: { _ in nil })
        #expect(unset.user(4_294_967_295) == "unset")
    }

    @Test func everyFileAfterARotationStartsWithTheLiveContainersInfo() throws {
        let dir = temporaryDirectory()
        defer { _ = system("rm -rf \(dir)") }
        let writer = try HostLogWriter(directory: dir, format: .raw, maxFileBytes: 1000, numLogs: 3, flush: .none)
        let info = "type=CONTAINER_INFO msg=audit(1700000001.000:1): opid=700 contid=5 name=\"web\" labels=\"team=pay\""
        var asked = 0
        writer.newFileRecords = {
            asked += 1
            return [try! AuditRecord(parsing: info)]
        }
        for i in 0..<20 {
            let syscall = "type=SYSCALL msg=audit(1700000000.000:\(i)): arch=c000003e syscall=2 success=yes exit=3 pid=\(i) key=\"k\""
            try writer.write(try AuditRecord(parsing: syscall))
            try writer.flush()
        }
        writer.close()
        #expect(writer.rotations == 2)
        #expect(asked == 2)
        // The first file is as written; each file begun by a rotation opens with the info record.
        #expect(read(dir + "/audit.log.2").hasPrefix("type=SYSCALL "))
        for name in ["/audit.log.1", "/audit.log"] {
            #expect(read(dir + name).split(separator: "\n").first.map(String.init) == info, "\(name)")
        }
    }

    @Test func rotationKeepsNumLogsFilesAndWholeEvents() throws {
        let dir = temporaryDirectory()
        defer { _ = system("rm -rf \(dir)") }
        let writer = try HostLogWriter(directory: dir, format: .raw, maxFileBytes: 1000, numLogs: 3, flush: .none)
        var lines: [String] = []
        for i in 0..<40 {
            let syscall = "type=SYSCALL msg=audit(1700000000.000:\(i)): arch=c000003e syscall=2 success=yes exit=3 pid=\(i) key=\"k\""
            let eoe = "type=EOE msg=audit(1700000000.000:\(i)): "
            try writer.write(AuditEvent(node: nil, serial: UInt32(i), time: AuditTime(seconds: 1_700_000_000, milliseconds: 0),
                                        records: [try AuditRecord(parsing: syscall), try AuditRecord(parsing: eoe)]))
            lines.append(syscall)
            try writer.flush()
        }
        writer.close()
        #expect(writer.rotations == 4)
        let current = read(dir + "/audit.log"), one = read(dir + "/audit.log.1"), two = read(dir + "/audit.log.2")
        #expect(access(dir + "/audit.log.3", F_OK) != 0)
        for text in [current, one, two] {
            #expect(text.utf8.count <= 1000)
            #expect(!text.contains("type=EOE"))
            #expect(text.hasSuffix("\n"))
        }
        // The newest lines, in order, across audit.log.2, .1 and audit.log.
        let kept = (two + one + current).split(separator: "\n").map(String.init)
        #expect(kept == Array(lines.suffix(kept.count)))
        // Lines of 99-101 bytes: 9 fill a 1000-byte file, so 40 lines rotate 4 times and
        // the three files kept hold the newest 9 + 9 + 3.
        #expect([two, one, current].map(\.utf8.count) == [909, 909, 303])
        #expect(kept.count == 21)
    }
}

@Suite struct DaemonConfigurationTests {
    @Test func defaultsAndOverrides() {
        var c = DaemonConfiguration()
        #expect(c.logDirectory == "/var/log/contid" && c.runDirectory == "/run/contid" && c.stateDirectory == "/var/lib/contid")
        #expect(c.rulesDirectory == "/etc/contid/rules.d" && c.logFormat == .raw && c.source == .auto)
        let errors = c.apply("""
            # contidd.conf
            source = netlink
            log_format = ENRICHED   # case does not matter
            max_log_file = 16
            num_logs=9
            flush = data
            grace_ms = 500
            socket_mode = 0660

            """, file: "/etc/contid/contidd.conf")
        #expect(errors.isEmpty)
        #expect(c.source == .netlink && c.logFormat == .enriched && c.maxLogFileMB == 16 && c.numLogs == 9)
        #expect(c.flush == .data && c.graceMilliseconds == 500 && c.socketMode == 0o660)
    }

    @Test func badLinesNameFileLineAndProblem() {
        var c = DaemonConfiguration()
        let errors = c.apply("""
            log_dri = /tmp
            log_dir = relative
            num_logs = many
            flush = sometimes
            just words
            log_format = raw
            """, file: "c.conf")
        #expect(errors.map(\.description) == [
            "c.conf:1: unknown key \"log_dri\"; did you mean \"log_dir\"?",
            "c.conf:2: log_dir takes an absolute path, not \"relative\"",
            "c.conf:3: num_logs takes a number from 1 to 999, not \"many\"",
            "c.conf:4: flush is one of none, incremental, incremental_async, data, sync, not \"sometimes\"",
            "c.conf:5: expected KEY = VALUE, got \"just words\"",
        ])
        #expect(c.logDirectory == "/var/log/contid")
    }
}
