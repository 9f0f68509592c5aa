import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import Testing

@Suite struct ReviewFixTests {
    func filter(_ text: String) -> ContainerRuleFilter {
        var filter = ContainerRuleFilter()
        let (lines, errors) = RuleParser.parse(text, file: "f")
        #expect(errors.isEmpty)
        for line in lines {
            if case let .add(rule, _) = line.command { filter.add(rule) }
        }
        return filter
    }

    /// A rule without contid sharing its key with a contid rule admits every chain,
    /// whichever comes first in the file.
    @Test func plainRuleSharingAKeyWithAContidRuleIsNotFiltered() {
        for text in ["-a always,exit -S openat -F contid=7 -k shared\n-w /etc/passwd -p wa -k shared\n",
                     "-w /etc/passwd -p wa -k shared\n-a always,exit -S openat -F contid=7 -k shared\n"] {
            let f = filter(text)
            #expect(f.admits(key: "shared", chain: ContainerChain([8])), "\(text)")
            #expect(f.admits(key: "shared", chain: .unset), "\(text)")
            #expect(f.admits(key: "shared", chain: ContainerChain([7])), "\(text)")
        }
        // Without the plain rule the key is filtered.
        let only = filter("-a always,exit -S openat -F contid=7 -k shared\n-w /etc/passwd -p wa -k other\n")
        #expect(!only.admits(key: "shared", chain: .unset))
        #expect(only.admits(key: "other", chain: .unset))
    }

    /// A `'` inside contid's text does not cut the unwrapped body short: it runs to the record's last `'`.
    @Test func unwrapKeepsAQuoteInsideTheText() throws {
        let wrapped = try AuditRecord(parsing: "type=UNKNOWN[2900] msg=audit(1700000000.123:42): pid=500 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=812 contid=7 old-contid=-1 pid=800 comm=\"it's\" res=1'")
        let own = try #require(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 500))
        #expect(own.line == "type=CONTAINER_OP msg=audit(1700000000.123:42): op=set opid=812 contid=7 old-contid=-1 pid=800 comm=\"it's\" res=1")
        #expect(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 50) == nil)
        #expect(HostLogForm.unwrappedText(" pid=500 uid=0 auid=1 ses=2 subj=unconfined msg='a'b'", ownPID: 500) == "a'b")
        #expect(HostLogForm.unwrappedText(" pid=500 uid=0 msg=x", ownPID: 500) == nil)
    }

    func temporaryDirectory() -> String { makeTemporaryDirectory("reviewfix") }
    func contents(_ path: String) -> String { fileContents(path) }

    func record(_ n: Int) -> AuditRecord {
        AuditRecord.make(type: .containerOp, time: AuditTime(seconds: 1_700_000_000, milliseconds: 0), serial: UInt32(n),
                         body: "op=test n=\(n) pad=" + String(repeating: "x", count: 60))
    }

    /// The log's directory goes away (it cannot be written): a rotation fails to open
    /// the new file, records are buffered up to the cap (the rest counted as dropped),
    /// and once the directory is back a later flush opens the file and writes them.
    @Test func hostLogKeepsRecordsWhileTheDirectoryCannotBeWrittenAndReopens() throws {
        let dir = temporaryDirectory() + "/log"
        mkdir(dir, 0o700)
        let log = try HostLogWriter(directory: dir, maxFileBytes: 0, numLogs: 2, maxBufferBytes: 2000)
        try log.write(record(1))
        try log.flush()
        unlink(dir + "/audit.log")
        rmdir(dir)
        #expect(throws: HostLogError.self) { try log.rotate() }
        var failures = 0
        for n in 2...60 {
            do { try log.write(record(n)) } catch { failures += 1 }
            do { try log.flush() } catch { failures += 1 }
        }
        #expect(failures > 0)
        #expect(log.recordsDropped > 0)
        let kept = 60 - 1 - log.recordsDropped
        #expect(kept > 0)
        mkdir(dir, 0o700)
        try log.flush()
        try log.write(record(61))
        try log.flush()
        let lines = contents(dir + "/audit.log").split(separator: "\n")
        // Records 2... up to the cap, then 61: none twice, none torn.
        #expect(lines.count == kept + 1)
        #expect(lines.first?.contains(" n=2 ") == true)
        #expect(lines.last?.contains(" n=61 ") == true)
        #expect(Set(lines).count == lines.count)
        log.close()
    }
}
