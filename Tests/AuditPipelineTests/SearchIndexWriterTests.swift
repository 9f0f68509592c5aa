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
