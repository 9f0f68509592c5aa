import AuditCodec
import ContainerEngine
import LinuxAudit
import TestSupport
import Testing

@testable import ContidDaemon

/// contid's own records: submitted through the kernel, written when they come back,
/// written directly when they do not, never twice.
@Suite struct OwnRecordLedgerTests {
    final class Kernel: UserMessageSubmitter {
        var sent: [(AuditRecordType, String)] = []
        var refuse = false
        func submit(type: AuditRecordType, text: String) throws {
            if refuse { throw LinuxAuditError.rejected(request: "user message", .connectionRefused) }
            sent.append((type, text))
        }
    }

    let clock = ManualTimeSource(wall: 1_796_000_000_123)
    let kernel = Kernel()
    var written: [String] = []

    private func ledger(_ sink: @escaping (AuditRecord) -> Void) -> OwnRecordLedger {
        OwnRecordLedger(clock: clock, submitter: kernel, submitThroughKernel: true, writeDirect: sink)
    }

    private let op = ContainerRecord(type: .containerOp, body: "op=set opid=1 contid=7 old-contid=-1 res=1")

    private func cameBackRecord() -> AuditRecord {
        AuditRecord.make(type: .containerOp, time: AuditTime(seconds: 1_796_000_000, milliseconds: 200), serial: 99,
                         body: " " + op.body)
    }

    @Test func recordThatComesBackIsNotWrittenDirectly() {
        var direct: [AuditRecord] = []
        let l = ledger { direct.append($0) }
        l.submit([op])
        #expect(kernel.sent.count == 1)
        #expect(l.inFlightCount == 1)
        #expect(l.cameBack(cameBackRecord()))
        clock.advance(milliseconds: 1000)
        l.writeOverdue(all: false)
        #expect(direct.isEmpty)
        #expect(l.counters == .init(submitFailures: 0, writtenDirectly: 0))
    }

    @Test func lateRecordIsWrittenDirectlyOnceAndNotAgainWhenItComesBack() {
        var direct: [AuditRecord] = []
        let l = ledger { direct.append($0) }
        l.submit([op])
        clock.advance(milliseconds: 499)
        l.writeOverdue(all: false)
        #expect(direct.isEmpty)
        clock.advance(milliseconds: 1)
        l.writeOverdue(all: false)
        #expect(direct.map { String(decoding: $0.text, as: UTF8.self) } == ["type=CONTAINER_OP msg=audit(1796000000.623:1): op=set opid=1 contid=7 old-contid=-1 res=1"])
        #expect(l.counters.writtenDirectly == 1)
        #expect(!l.cameBack(cameBackRecord()))
        // A second copy coming back is a new record (not remembered twice).
        #expect(l.cameBack(cameBackRecord()))
    }

    @Test func refusedSubmissionIsWrittenDirectlyAtOnce() {
        var direct: [AuditRecord] = []
        let l = ledger { direct.append($0) }
        kernel.refuse = true
        l.submit([op, op])
        #expect(direct.count == 2)
        #expect(direct.map(\.serial) == [1, 2])
        #expect(l.counters == .init(submitFailures: 2, writtenDirectly: 0))
        #expect(l.inFlightCount == 0)
    }

    @Test func withoutTheKernelRecordsAreWrittenDirectly() {
        var direct: [AuditRecord] = []
        let l = ledger { direct.append($0) }
        l.submitThroughKernel = false
        l.submit([op])
        #expect(kernel.sent.isEmpty)
        #expect(direct.count == 1)
    }

    @Test func shutdownWritesEverythingInFlight() {
        var direct: [AuditRecord] = []
        let l = ledger { direct.append($0) }
        l.submit([op, op, op])
        l.writeOverdue(all: true)
        #expect(direct.count == 3)
        #expect(l.inFlightCount == 0)
    }
}
