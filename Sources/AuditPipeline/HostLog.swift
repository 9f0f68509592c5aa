// The host trail (SPEC §7): auditd's log format, RAW or ENRICHED, so ausearch
// and aureport read it; size-based rotation and a flush policy like auditd's.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec

public enum HostLogFormat: String, CaseIterable, Sendable {
    /// Records as the kernel wrote them.
    case raw
    /// Each record followed by 0x1D and interpreted fields (`ARCH=x86_64 SYSCALL=execve UID="root"`).
    case enriched
}

/// When written data is forced to disk (auditd.conf `flush`).
public enum HostLogFlush: String, CaseIterable, Sendable {
    /// Written to the file after each batch; the kernel's page cache decides the rest.
    case none
    /// fdatasync every `freq` records.
    case incremental
    /// Same as incremental (auditd does it from a thread; contidd from its loop).
    case incrementalAsync = "incremental_async"
    /// fdatasync after every batch.
    case data
    /// fsync after every batch.
    case sync
}

// MARK: - record forms

public enum HostLogForm {
    /// A record contid sent through the kernel as a user message comes back as
    /// `pid=OURS uid=0 auid=.. ses=.. msg='op=set ...'`. For records of contid's own
    /// types (`isContidOwnRecord`: 2900-2908 but CONTAINER_ID) from `ownPID`, the log gets the SPEC §6 form
    /// `type=CONTAINER_OP msg=audit(T:S): op=set ...`: the kernel's time and serial,
    /// the text contid wrote. Anything else (another sender of these types) is nil
    /// and stays as the kernel wrote it.
    public static func unwrapOwnRecord(_ record: AuditRecord, ownPID: Int32) -> AuditRecord? {
        guard record.type.isContidOwnRecord else { return nil }
        guard let text = unwrappedText(record.body, ownPID: ownPID) else { return nil }
        return AuditRecord.make(type: record.type, time: record.time, serial: record.serial, body: text,
                                node: record.node)
    }

    /// The text of a user message from `ownPID` as the kernel wraps it
    /// (`pid=P uid=.. auid=.. ses=.. [subj=..] msg='TEXT'`): from after the first
    /// ` msg='` to the body's last `'`, so a `'` inside TEXT does not cut it short.
    public static func unwrappedText(_ body: String, ownPID: Int32) -> String? {
        let b = Array(body.utf8)
        var i = 0
        while i < b.count, b[i] == 0x20 { i += 1 }
        let pidField = Array("pid=\(ownPID) ".utf8)
        guard b.count - i >= pidField.count, Array(b[i..<(i + pidField.count)]) == pidField else { return nil }
        let marker = Array(" msg='".utf8)
        var start = -1
        var j = i
        while j + marker.count <= b.count {
            if b[j] == marker[0], Array(b[j..<(j + marker.count)]) == marker { start = j + marker.count; break }
            j += 1
        }
        guard start >= 0, let end = b.lastIndex(of: UInt8(ascii: "'")), end >= start else { return nil }
        return String(decoding: b[start..<end], as: UTF8.self)
    }

    /// The line a record is written as, RAW or ENRICHED (newline not included).
    public static func line(_ record: AuditRecord, format: HostLogFormat, names: inout AccountNames) -> [UInt8] {
        guard format == .enriched, !record.header.hasEnrichment else { return record.text }
        var interpreted: [String] = []
        var arch: AuditArch?
        for f in record.fields where f.form != .word {
            let name = f.name
            if name == "arch" {
                arch = AuditArch(field: f.rawValue)
                if let arch { interpreted.append("ARCH=\(arch.name)") }
            } else if name == "syscall", let arch, let n = Int(f.rawValue), let s = arch.syscallName(n) {
                interpreted.append("SYSCALL=\(s)")
            } else if uidFields.contains(name), let v = UInt32(f.rawValue) {
                interpreted.append("\(name.uppercased())=\(AuditText.untrusted(names.user(v)))")
            } else if gidFields.contains(name), let v = UInt32(f.rawValue) {
                interpreted.append("\(name.uppercased())=\(AuditText.untrusted(names.group(v)))")
            }
        }
        guard !interpreted.isEmpty else { return record.text }
        var out = record.text
        out.append(RecordScanner.enrichmentSeparator)
        out += interpreted.joined(separator: " ").utf8
        return out
    }

    static let uidFields: Set<String> = ["auid", "uid", "euid", "suid", "fsuid", "ouid", "oauid", "obj_uid", "sauid"]
    static let gidFields: Set<String> = ["gid", "egid", "sgid", "fsgid", "ogid", "obj_gid"]
}

/// User and group names for ENRICHED output, looked up once per id. auditd's
/// spellings: `root`, `unset` for 4294967295, `unknown(4245)` for ids without a name.
public struct AccountNames {
    private var users: [UInt32: String] = [:]
    private var groups: [UInt32: String] = [:]
    private let lookUpUser: (UInt32) -> String?
    private let lookUpGroup: (UInt32) -> String?

    public init(user: @escaping (UInt32) -> String? = AccountNames.systemUser,
                group: @escaping (UInt32) -> String? = AccountNames.systemGroup) {
        lookUpUser = user
        lookUpGroup = group
    }

    public mutating func user(_ id: UInt32) -> String {
        if id == UInt32.max { return "unset" }
        if let n = users[id] { return n }
        let n = lookUpUser(id) ?? "unknown(\(id))"
        users[id] = n
        return n
    }

    public mutating func group(_ id: UInt32) -> String {
        if id == UInt32.max { return "unset" }
        if let n = groups[id] { return n }
        let n = lookUpGroup(id) ?? "unknown(\(id))"
        groups[id] = n
        return n
    }

    public static func systemUser(_ id: UInt32) -> String? {
        var pw = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(id, &pw, &buffer, buffer.count, &result) == 0, result != nil, let name = pw.pw_name else { return nil }
        return String(cString: name)
    }

    public static func systemGroup(_ id: UInt32) -> String? {
        var gr = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getgrgid_r(id, &gr, &buffer, buffer.count, &result) == 0, result != nil, let name = gr.gr_name else { return nil }
        return String(cString: name)
    }
}

// MARK: - the file

/// A failure writing the host log: which file and the errno.
public struct HostLogError: Error, CustomStringConvertible {
    public var path: String
    public var operation: String
    public var errno: Int32
    public var description: String { "\(operation) \(path): \(String(cString: strerror(errno)))" }
}

/// Told what the host log writes, where, and when it rotates (the sidecar index, LogIndex.swift).
public protocol HostLogObserver: AnyObject {
    /// `bytes` were written to the file at `offset`.
    func wrote(_ bytes: UnsafeRawBufferPointer, at offset: Int)
    /// The file was rotated: `path` is now `path.1` (older ones moved up to `path.(numLogs-1)`).
    func rotated(path: String, numLogs: Int)
    /// The file was opened again (after an outside rotation); it holds `size` bytes.
    func reopened(size: Int)
}

/// Writes `DIR/audit.log`, rotating to `audit.log.1` ... `audit.log.(numLogs-1)`
/// when the next event would pass `maxFileBytes` (auditd's `max_log_file_action = rotate`).
/// Lines are buffered and written by `flush()`, which the daemon calls after each batch.
public final class HostLogWriter {
    public let directory: String
    public let path: String
    public let format: HostLogFormat
    public let maxFileBytes: Int
    public let numLogs: Int
    public let flushPolicy: HostLogFlush
    public let frequency: Int

    private var fd: Int32 = -1
    private var size = 0
    private var buffer: [UInt8] = []
    private var scratch: [UInt8] = []
    private var recordsSinceSync = 0
    private var names = AccountNames()
    public private(set) var recordsWritten = 0
    public private(set) var eventsWritten = 0
    public private(set) var rotations = 0

    /// Lines buffered at most (while the file cannot be written); beyond, records are dropped and counted.
    public let maxBufferBytes: Int
    /// Records dropped because the buffer was full.
    public private(set) var recordsDropped = 0
    /// The file is to be opened again (a rotation or reopen failed to open it).
    private var reopenWanted = false
    /// Records that open each new file after a rotation, so that every file stands on its
    /// own: the CONTAINER_INFO of each live container (SPEC §6). Asked for at each rotation.
    public var newFileRecords: (() -> [AuditRecord])?
    /// Told of every write and rotation (contidd's sidecar index).
    public weak var observer: HostLogObserver?
    /// How contid's own record types are written (`record_type_names`).
    public var ownTypeForm: OwnTypeForm = .name
    /// `node=NAME ` put before every line that has no node= of its own (`node_name`).
    public var nodePrefix: [UInt8] = []

    /// `maxFileBytes` 0 means never rotate. `numLogs` counts audit.log itself (at least 2 to rotate).
    public init(directory: String, format: HostLogFormat = .raw, maxFileBytes: Int = 8 << 20, numLogs: Int = 5,
                flush: HostLogFlush = .incrementalAsync, frequency: Int = 50, maxBufferBytes: Int = 64 << 20) throws {
        self.directory = directory
        self.path = directory + "/audit.log"
        self.format = format
        self.maxFileBytes = maxFileBytes
        self.numLogs = max(1, numLogs)
        self.flushPolicy = flush
        self.frequency = max(1, frequency)
        self.maxBufferBytes = maxBufferBytes
        buffer.reserveCapacity(1 << 16)
        try open()
    }

    deinit { close() }

    private func open() throws {
        let newFD = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw HostLogError(path: path, operation: "open", errno: errno) }
        fd = newFD
        var st = stat()
        size = fstat(fd, &st) == 0 ? Int(st.st_size) : 0
    }

    /// Writes an event's records (EOE left out, as auditd does).
    public func write(_ event: AuditEvent) throws {
        var lines: [[UInt8]] = []
        lines.reserveCapacity(event.records.count)
        for r in event.records where r.type != .eoe { lines.append(HostLogForm.line(r, format: format, names: &names)) }
        try write(lines: lines)
        eventsWritten += 1
    }

    /// Writes one record (a standalone event).
    public func write(_ record: AuditRecord) throws {
        try write(lines: [HostLogForm.line(record, format: format, names: &names)])
        eventsWritten += 1
    }

    /// Writes a borrowed event with its annotation: RAW lines go straight into the
    /// buffer (nothing allocated); ENRICHED ones are built from an owned copy.
    public func write(_ event: AuditEventView, annotation: EventAnnotation) throws {
        guard format == .raw else {
            try write(annotation.makeEvent(event))
            return
        }
        var bytes = 0
        var lines = 0
        annotation.forEachLine(of: event, scratch: &scratch) { a, b, c in
            bytes += a.count + b.count + c.count + 1 + nodePrefix.count
            lines += 1
        }
        try write(bytes: bytes, lines: lines) {
            annotation.forEachLine(of: event, scratch: &scratch) { a, b, c in
                if !nodePrefix.isEmpty, !Self.hasNode(a) { buffer.append(contentsOf: nodePrefix) }
                buffer.append(contentsOf: a)
                if !b.isEmpty { buffer.append(contentsOf: b) }
                if !c.isEmpty { buffer.append(contentsOf: c) }
                buffer.append(0x0A)
            }
        }
        eventsWritten += 1
    }

    private func write(lines: [[UInt8]]) throws {
        try write(bytes: lines.reduce(0) { $0 + $1.count + 1 + nodePrefix.count }, lines: lines.count) {
            for l in lines {
                if !nodePrefix.isEmpty, !l.withUnsafeBytes(Self.hasNode) { buffer += nodePrefix }
                buffer += l
                buffer.append(0x0A)
            }
        }
    }

    /// The line starts with `node=` (a record from another machine keeps its own).
    @inline(__always)
    static func hasNode(_ line: UnsafeRawBufferPointer) -> Bool {
        line.count > 5 && line[0] == UInt8(ascii: "n") && line.starts(with: "node=".utf8)
    }

    /// Buffers `lines` lines of `bytes` bytes with `append` (rotating first when they
    /// would pass the size limit). A failure to write or rotate is thrown after the
    /// lines are buffered: they are written by a later flush, unless the buffer is full
    /// (then they are dropped and counted).
    private func write(bytes: Int, lines: Int, append: () -> Void) throws {
        var failure: Error?
        if fd >= 0, maxFileBytes > 0, numLogs > 1, size + buffer.count > 0, size + buffer.count + bytes > maxFileBytes {
            do {
                try flush()
                try rotate()
            } catch { failure = error }
        }
        if buffer.count + bytes > maxBufferBytes {
            recordsDropped += lines
        } else {
            let before = buffer.count
            append()
            if ownTypeForm == .numeric, let numeric = buffer.withUnsafeBytes({ OwnTypeForm.numeric(UnsafeRawBufferPointer(rebasing: $0[before...])) }) {
                buffer.replaceSubrange(before..., with: numeric)
            }
            recordsWritten += lines
            recordsSinceSync += lines
        }
        if failure == nil, buffer.count >= 1 << 20 {
            do { try flush() } catch { failure = error }
        }
        if let failure { throw failure }
    }

    /// Writes the buffer to the file and applies the flush policy. The file is opened
    /// again first when an earlier open failed; bytes written before a failure are
    /// not written twice.
    public func flush() throws {
        if reopenWanted || fd < 0 {
            do { try reopen() } catch { if fd < 0 { throw error } }  // else the old file goes on
        }
        if !buffer.isEmpty {
            var off = 0
            defer {
                if off > 0 {
                    size += off
                    if off == buffer.count { buffer.removeAll(keepingCapacity: true) } else { buffer.removeFirst(off) }
                }
            }
            while off < buffer.count {
                let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, $0.count - off) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw HostLogError(path: path, operation: "write", errno: errno)
                }
                if let observer { buffer.withUnsafeBytes { observer.wrote(UnsafeRawBufferPointer(rebasing: $0[off..<(off + n)]), at: size + off) } }
                off += n
            }
            switch flushPolicy {
            case .none: break
            case .incremental, .incrementalAsync:
                if recordsSinceSync >= frequency {
                    _ = fdatasync(fd)
                    recordsSinceSync = 0
                }
            case .data: _ = fdatasync(fd)
            case .sync: _ = fsync(fd)
            }
        }
    }

    /// Opens the path again (after an external rotation, SIGHUP): the new file is
    /// opened before the old one is closed; if it cannot be, the old one stays in use
    /// and later flushes try again.
    public func reopen() throws {
        let old = fd
        let oldSize = size
        do {
            try open()
        } catch {
            reopenWanted = true
            fd = old
            size = oldSize
            throw error
        }
        reopenWanted = false
        observer?.reopened(size: size)
        if old >= 0, old != fd {
            _ = fsync(old)
            Glibc.close(old)
        }
    }

    /// audit.log.(n-1) is dropped, each audit.log.k moves to k+1, audit.log becomes audit.log.1.
    public func rotate() throws {
        _ = fsync(fd)
        Glibc.close(fd)
        fd = -1
        if numLogs > 1 {
            unlink("\(path).\(numLogs - 1)")
            var k = numLogs - 2
            while k >= 1 {
                rename("\(path).\(k)", "\(path).\(k + 1)")
                k -= 1
            }
            if rename(path, "\(path).1") != 0 && errno != ENOENT {
                let e = errno
                reopenWanted = true
                throw HostLogError(path: path, operation: "rename", errno: e)
            }
        }
        rotations += 1
        if numLogs > 1 { observer?.rotated(path: path, numLogs: numLogs) }
        do { try open() } catch {
            reopenWanted = true
            throw error
        }
        // Protected records: put first in the new file whatever the buffer limit.
        for r in newFileRecords?() ?? [] {
            if !nodePrefix.isEmpty { buffer += nodePrefix }
            buffer += HostLogForm.line(r, format: format, names: &names)
            buffer.append(0x0A)
            recordsWritten += 1
            recordsSinceSync += 1
        }
    }

    public func close() {
        if fd < 0, !buffer.isEmpty { try? open() }
        guard fd >= 0 else { return }
        try? flush()
        _ = fsync(fd)
        Glibc.close(fd)
        fd = -1
    }

    /// Bytes in the current file (written and buffered).
    public var currentSize: Int { size + buffer.count }
}

/// The host log is the pipeline's first sink.
extension HostLogWriter: EventSink {
    public func accept(_ event: AuditEventView, annotation: EventAnnotation) throws {
        try write(event, annotation: annotation)
    }
}
