// Per-container logs (`container_logs = yes`): LOGDIR/containers/ID/audit.log,
// each holding its container's events and its nested descendants' (an event goes
// to the log of every ID in its task's chain), in the host log's form and rotation.
//
// An ID may be registered again after its container ended. The log must not mix the
// two: beside each log a `creation` file names the registration it was written for
// (the registry's creation order, kept across restarts in the snapshot); the first
// event of another registration rotates the old file away first.

import AuditCodec
import ContainerEngine
import Glibc

public final class ContainerLogs: RouteDestination {
    public struct Settings: Sendable {
        public var format: HostLogFormat = .raw
        public var maxFileBytes = 8 << 20
        public var numLogs = 5
        public var flush: HostLogFlush = .incrementalAsync
        public var frequency = 50
        /// Logs kept open at once; the least recently written is closed beyond it.
        public var maxOpen = 128
        public var nodePrefix: [UInt8] = []
        public var ownTypeForm: OwnTypeForm = .name
        public init() {}
    }

    public let name = "container-log"
    public let directory: String
    public let settings: Settings
    private let losses: LossBook
    /// The registration a live ID stands for (nil: not live).
    private let creationOf: (ContainerID) -> UInt64?
    private struct Open {
        var writer: HostLogWriter
        var creation: UInt64
        var lastUse: UInt64
    }
    private var open: [ContainerID: Open] = [:]
    private var uses: UInt64 = 0
    public private(set) var eventsWritten = 0
    public private(set) var rotationsForReuse = 0

    /// `directory`: LOGDIR/containers.
    public init(directory: String, settings: Settings, losses: LossBook, creationOf: @escaping (ContainerID) -> UInt64?) {
        self.directory = directory
        self.settings = settings
        self.losses = losses
        self.creationOf = creationOf
    }

    public var queueDepth: Int { 0 }  // written in line, as the host log
    public var openCount: Int { open.count }

    public func offer(_ event: AuditEventView, annotation: EventAnnotation, routed: RoutedEvent) {
        for id in routed.chain.ids {
            do {
                let w = try writer(for: id)
                try w.write(event, annotation: annotation)
                eventsWritten &+= 1
            } catch {
                losses.count(.init(destination: "container-log:\(id)", contid: id, cause: .writeError, protected: routed.isProtected))
            }
        }
    }

    private func writer(for id: ContainerID) throws -> HostLogWriter {
        uses &+= 1
        let creation = creationOf(id) ?? 0
        if var o = open[id] {
            if o.creation == creation || creation == 0 {
                o.lastUse = uses
                open[id] = o
                return o.writer
            }
            // The ID was registered again while its old log was open.
            o.writer.close()
            open[id] = nil
        }
        if open.count >= settings.maxOpen, let oldest = open.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            oldest.value.writer.close()
            open[oldest.key] = nil
        }
        let dir = directory + "/" + id.description
        try PipelineFiles.makeDirectory(dir)
        let w = try HostLogWriter(directory: dir, format: settings.format, maxFileBytes: settings.maxFileBytes,
                                  numLogs: settings.numLogs, flush: settings.flush, frequency: settings.frequency,
                                  maxBufferBytes: 8 << 20)
        w.nodePrefix = settings.nodePrefix
        w.ownTypeForm = settings.ownTypeForm
        let marker = dir + "/creation"
        let written = PipelineFiles.readText(marker).flatMap { UInt64($0.split(separator: "\n").first ?? "") }
        if creation != 0, written != creation {
            if w.currentSize > 0 {
                try w.rotate()
                rotationsForReuse += 1
            }
            try PipelineFiles.writeText(marker, "\(creation)\n")
        }
        open[id] = Open(writer: w, creation: creation, lastUse: uses)
        return w
    }

    public func flush() throws {
        var first: Error?
        for o in open.values {
            do { try o.writer.flush() } catch { if first == nil { first = error } }
        }
        if let first { throw first }
    }

    public func close() {
        for o in open.values { o.writer.close() }
        open.removeAll()
    }
}

/// Small file helpers for AuditPipeline (no LinuxAudit dependency here).
enum PipelineFiles {
    static func makeDirectory(_ path: String) throws {
        var st = stat()
        if stat(path, &st) == 0 { return }
        var prefix = ""
        for part in path.split(separator: "/") {
            prefix += "/" + part
            if mkdir(prefix, 0o700) != 0, errno != EEXIST {
                throw HostLogError(path: prefix, operation: "mkdir", errno: errno)
            }
        }
    }

    static func readText(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes `text` to `path` atomically (a temporary file renamed over it).
    static func writeText(_ path: String, _ text: String) throws {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw HostLogError(path: tmp, operation: "open", errno: errno) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        Glibc.close(fd)
        guard n == bytes.count else { throw HostLogError(path: tmp, operation: "write", errno: errno) }
        guard rename(tmp, path) == 0 else { throw HostLogError(path: path, operation: "rename", errno: errno) }
    }
}

/// A named JSON-lines destination (`type = json`): one event per line, the schema of
/// `contid replay --format json` plus the innermost container's labels (so shippers can
/// map `contid` and `labels` to ECS `container.id`/`container.labels`). A file (or
/// standard output, `path = -`) is written in line, as the host log.
public final class JSONLinesDestination: RouteDestination {
    public let name: String
    private let sink: JSONLogSink
    private let losses: LossBook
    public private(set) var eventsWritten = 0

    public init(name: String, path: String, losses: LossBook, labels: @escaping (ContainerID) -> ContainerLabels) throws {
        self.name = name
        self.losses = losses
        sink = try JSONLogSink(path: path == "-" ? "/dev/stdout" : path, labels: labels)
    }

    public var queueDepth: Int { 0 }

    public func offer(_ event: AuditEventView, annotation: EventAnnotation, routed: RoutedEvent) {
        do {
            try sink.accept(event, annotation: annotation)
            eventsWritten &+= 1
        } catch {
            losses.count(.init(destination: name, contid: routed.chain.innermost, cause: .writeError, protected: routed.isProtected))
        }
    }

    public func flush() throws { try sink.flush() }
    public func close() { sink.close() }
}
