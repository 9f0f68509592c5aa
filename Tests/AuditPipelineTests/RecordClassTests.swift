import Testing
import AuditCodec
@testable import AuditPipeline

@Suite struct OwnRecordFormTests {
    @Test func ownContainerInfoIsUnwrappedLikeTheOtherOwnTypes() throws {
        // CONTAINER_INFO (2908) is one of contid's own records (SPEC §6): the host log gets its own form.
        let wrapped = try AuditRecord(parsing: "type=UNKNOWN[2908] msg=audit(1700000000.123:42): pid=500 uid=0 auid=4294967295 ses=4294967295 msg='opid=812 contid=7 runtime=\"runc\"'")
        let own = try #require(HostLogForm.unwrapOwnRecord(wrapped, ownPID: 500))
        #expect(own.line == "type=CONTAINER_INFO msg=audit(1700000000.123:42): opid=812 contid=7 runtime=\"runc\"")
    }
}
