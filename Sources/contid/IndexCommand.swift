import ArgumentParser
import AuditPipeline

struct IndexCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "index",
        abstract: "Build the sidecar index (FILE.cidx) that lets search skip the blocks of a log that cannot match.",
        discussion: """
            For each FILE (an auditd log, or one contidd wrote without its index) writes FILE.cidx: \
            per block of about 1 MiB, the first and last stamp, the record types, the keys and \
            (a Bloom filter of) the container IDs present. A log that changed after its index was \
            built makes the index stale, and search then ignores it and reads the whole log; a log \
            that only grew is read through the index up to where it ends. Run it again after rotation.
            """)

    @Option(name: .long, help: "Bytes of log per block (at line ends).")
    var blockBytes: UInt64 = 1 << 20

    @Argument(help: "Log files to index.")
    var files: [String] = []

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE") }
        if blockBytes < 4096 { throw ValidationError("--block-bytes must be at least 4096") }
    }

    func run() throws {
        let out = StandardOutput()
        var failed = false
        for path in files {
            do {
                let log = try MappedLog(path: path)
                let index = LogIndex.build(log.bytes, blockBytes: blockBytes)
                let sidecar = LogIndex.sidecarPath(path)
                try index.write(to: sidecar)
                out.write("\(sidecar): \(index.blocks.count) blocks over \(index.coveredBytes) bytes, \(index.keys.count) keys, \(index.types.count) record types\n")
            } catch {
                out.diagnostic("contid index: \(error)")
                failed = true
            }
        }
        out.flush()
        if failed { throw ExitCode(1) }
    }
}
