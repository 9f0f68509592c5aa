import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import TestSupport
import Testing

/// The host log when its file cannot be written: nothing torn, nothing twice, losses counted.
@Suite struct HostLogFailureTests {
    func temporaryDirectory() -> String { makeTemporaryDirectory("hostlog") }
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
        // Every flush fails while the directory is gone; the records (111-112 bytes a line)
        // are kept up to the 2000-byte cap: 16 of the 59, 43 dropped.
        #expect(failures == 59)
        #expect(log.recordsDropped == 43)
        let kept = 60 - 1 - log.recordsDropped
        #expect(kept == 16)
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
