import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import Testing

/// contid's own records as auditd writes them (UNKNOWN[2900] msg='...'), unwrapped for the host log.
@Suite struct OwnRecordUnwrapTests {
    /// A `'` inside contid's text does not cut the unwrapped body short: it runs to the record's last `'`.
    @Test func unwrapKeepsAQuoteInsideTheText() throws {
        let wrapped = try AuditRecord(parsing: "type=UNKNOWN[2900] msg=audit(1700000000.123:42): pid=500 uid=0 auid=4294967295 ses=4294967295 msg='op=set opid=812 contid=7 old-contid=-1 pid=800 comm=\"it's\" res=1'")
        let own = try #require(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 500))
        #expect(own.line == "type=CONTAINER_OP msg=audit(1700000000.123:42): op=set opid=812 contid=7 old-contid=-1 pid=800 comm=\"it's\" res=1")
        #expect(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 50) == nil)
        #expect(HostLogForm.unwrappedText(" pid=500 uid=0 auid=1 ses=2 subj=unconfined msg='a'b'", ownPID: 500) == "a'b")
        #expect(HostLogForm.unwrappedText(" pid=500 uid=0 msg=x", ownPID: 500) == nil)
    }
}
