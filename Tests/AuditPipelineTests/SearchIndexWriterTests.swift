import AuditCodec
import AuditPipeline
import Foundation
import Testing
import TestSupport

/// The sidecar index contidd keeps as its host log writes equals the one `contid index`
/// builds from the finished file, across rotations.
@Suite struct SearchIndexWriterTests {
    @Test func theHostLogsSidecarEqualsTheIndexBuiltFromTheFileAfterRotation() throws {
        let dir = makeTemporaryDirectory("index-writer")
        defer { removeTree(dir) }
        let log = try HostLogWriter(directory: dir, maxFileBytes: 200_000, numLogs: 3)
        let index = LogIndexWriter(logPath: log.path, existingSize: log.currentSize, blockBytes: 8192)
        log.observer = index
        for line in try Corpus.lines("captured-linux-6.18-raw.log") {
            try log.write(try AuditRecord(parsing: line))
            if line.count % 7 == 0 { try log.flush() }
        }
        log.close()
        index.save()
        #expect(log.rotations >= 2)
        for path in [log.path, log.path + ".1", log.path + ".2"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let built = bytes.withUnsafeBytes { LogIndex.build($0, blockBytes: 8192) }
            let side = try [UInt8](Data(contentsOf: URL(fileURLWithPath: LogIndex.sidecarPath(path))))
            let kept = try LogIndex(parsing: side, path: path)
            #expect(kept == built, "\(path): \(kept.blocks.count) blocks kept, \(built.blocks.count) built")
            #expect(bytes.withUnsafeBytes { kept.isCurrent(for: $0) })
        }
    }
}

@Suite struct OwnTypeFormTests {
    @Test func numericFormWritesOurTypesAsUnknownAndLeavesTheKernelsAlone() throws {
        let dir = makeTemporaryDirectory("own-types")
        defer { removeTree(dir) }
        let log = try HostLogWriter(directory: dir)
        log.ownTypeForm = .numeric
        try log.write(try AuditRecord(parsing: "type=CONTAINER_OP msg=audit(1700000000.000:5): op=set opid=1 contid=7 old-contid=-1 res=1"))
        try log.write(try AuditRecord(parsing: "node=h1 type=CONTAINER_INFO msg=audit(1700000000.000:6): opid=1 contid=7 labels=\"a=b\""))
        try log.write(try AuditRecord(parsing: "type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=2 comm=\"type=CONTAINER_OP\""))
        try log.write(try AuditRecord(parsing: "type=UNKNOWN[2907] msg=audit(1700000000.000:8): dest=\"host\" lost=1"))
        log.close()
        #expect(fileContents(dir + "/audit.log") == """
            type=UNKNOWN[2900] msg=audit(1700000000.000:5): op=set opid=1 contid=7 old-contid=-1 res=1
            node=h1 type=UNKNOWN[2908] msg=audit(1700000000.000:6): opid=1 contid=7 labels="a=b"
            type=SYSCALL msg=audit(1700000000.000:7): arch=c000003e syscall=2 comm="type=CONTAINER_OP"
            type=UNKNOWN[2907] msg=audit(1700000000.000:8): dest="host" lost=1

            """)
    }

    @Test func theSettingIsReadFromTheConfiguration() {
        var c = DaemonConfiguration()
        #expect(c.recordTypeNames == .name)
        #expect(c.apply("record_type_names = numeric\n", file: "t.conf").isEmpty)
        #expect(c.recordTypeNames == .numeric)
        #expect(c.apply("record_type_names = hex\n", file: "t.conf").map(\.description) == ["t.conf:1: record_type_names is one of name, numeric, not \"hex\""])
    }
}
