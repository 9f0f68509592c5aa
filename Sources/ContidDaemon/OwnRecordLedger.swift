import AuditCodec
import ContainerEngine
import LinuxAudit

/// Sends contid's own records to the kernel as user messages.
protocol UserMessageSubmitter: AnyObject {
    func submit(type: AuditRecordType, text: String) throws
}

extension AuditNetlink: UserMessageSubmitter {
    func submit(type: AuditRecordType, text: String) throws { try sendUserMessage(type: type, text: text) }
}

/// The ledger of contid's own records (CONTAINER_OP, SET_CAPCONTID, NS_*): each is
/// submitted through the kernel, so that it carries the kernel's timestamp and
/// serial and reaches auditd's log too, and is written when it comes back in the
/// stream. One that does not come back within `timeoutMilliseconds` (the kernel
/// dropped it: backlog full, audit disabled) is written directly with contidd's
/// clock; if it comes back after all, it is not written twice. Without the kernel
/// (`submitThroughKernel` false) records are written directly at once.
final class OwnRecordLedger {
    struct Counters: Equatable {
        var submitFailures = 0
        var writtenDirectly = 0
    }

    private let clock: TimeSource
    private let submitter: UserMessageSubmitter?
    private let writeDirect: (AuditRecord) -> Void
    let timeoutMilliseconds: UInt64
    var submitThroughKernel: Bool
    private var ownSerial: UInt32 = 0
    /// Submitted and not seen back yet, with when they were sent.
    private var inFlight: [(record: ContainerRecord, sentMs: UInt64)] = []
    /// Written directly because they were late (the newest `lateMemory`).
    private var writtenLate: [ContainerRecord] = []
    private let lateMemory = 1024
    private(set) var counters = Counters()

    init(clock: TimeSource, submitter: UserMessageSubmitter?, submitThroughKernel: Bool,
         timeoutMilliseconds: UInt64 = 500, writeDirect: @escaping (AuditRecord) -> Void) {
        self.clock = clock
        self.submitter = submitter
        self.submitThroughKernel = submitThroughKernel
        self.timeoutMilliseconds = timeoutMilliseconds
        self.writeDirect = writeDirect
    }

    var inFlightCount: Int { inFlight.count }

    func submit(_ records: [ContainerRecord]) {
        for r in records {
            if submitThroughKernel, let submitter {
                do {
                    try submitter.submit(type: r.type, text: r.body)
                    inFlight.append((r, clock.monotonicMilliseconds))
                    continue
                } catch {
                    counters.submitFailures += 1
                    Log.warning("submitting \(r.type.name) through the kernel: \(error); writing it directly")
                }
            }
            write(r)
        }
    }

    private func write(_ r: ContainerRecord) {
        writeDirect(stamped(r))
    }

    /// A record to write directly: contidd's clock and the next of its own serials.
    func stamped(_ r: ContainerRecord) -> AuditRecord {
        let wall = clock.wallMilliseconds
        ownSerial &+= 1
        return AuditRecord.make(type: r.type, time: AuditTime(seconds: wall / 1000, milliseconds: UInt16(wall % 1000)),
                                serial: ownSerial, body: r.body)
    }

    /// An own record came back through the kernel: it is no longer in flight. False
    /// when it was written directly already (do not write it again).
    func cameBack(_ record: AuditRecord) -> Bool {
        let body = record.body.drop { $0 == " " }
        if let i = inFlight.firstIndex(where: { $0.record.type == record.type && $0.record.body[...] == body }) {
            inFlight.remove(at: i)
            return true
        }
        if let i = writtenLate.firstIndex(where: { $0.type == record.type && $0.body[...] == body }) {
            writtenLate.remove(at: i)
            return false
        }
        return true
    }

    /// Writes directly the records that did not come back in time (all with `all`).
    func writeOverdue(all: Bool) {
        guard !inFlight.isEmpty else { return }
        let now = clock.monotonicMilliseconds
        var kept: [(record: ContainerRecord, sentMs: UInt64)] = []
        for entry in inFlight {
            if all || now >= entry.sentMs + timeoutMilliseconds {
                write(entry.record)
                counters.writtenDirectly += 1
                writtenLate.append(entry.record)
                if writtenLate.count > lateMemory { writtenLate.removeFirst(writtenLate.count - lateMemory) }
            } else {
                kept.append(entry)
            }
        }
        if inFlight.count != kept.count, !all {
            Log.warning("\(inFlight.count - kept.count) records submitted through the kernel did not come back within \(timeoutMilliseconds) ms; written directly (\(counters.writtenDirectly) so far)")
        }
        inFlight = kept
    }
}
