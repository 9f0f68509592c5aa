#if os(Linux)
import Glibc
import SystemPackage

/// The parts of /proc/PID/stat contid needs.
public struct ProcessStat: Sendable, Equatable {
    public var pid: pid_t
    /// The command name (field 2, without the parentheses; may contain spaces and `)`).
    public var comm: String
    /// Field 3: R, S, D, Z, T, ...
    public var state: UInt8
    public var ppid: pid_t
    public var threads: Int
    /// Field 22: start time in clock ticks since boot. (pid, startTime) names a process.
    public var startTime: UInt64

    public init(pid: pid_t, comm: String, state: UInt8, ppid: pid_t, threads: Int, startTime: UInt64) {
        self.pid = pid
        self.comm = comm
        self.state = state
        self.ppid = ppid
        self.threads = threads
        self.startTime = startTime
    }

    /// Parses the text of /proc/PID/stat.
    public init(parsing text: some Collection<UInt8>, path: String = "stat") throws {
        let bytes = Array(text)
        func fail(_ reason: String) -> LinuxAuditError { .malformed(what: path, reason: reason) }
        // comm is the text between the first "(" and the last ")".
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close
        else { throw fail("no (comm)") }
        guard let pid = pid_t(String(decoding: bytes[..<open], as: UTF8.self).trimmingSpaces) else { throw fail("bad pid") }
        let rest = bytes[(close + 1)...].split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
        // rest[0] is field 3; field n is rest[n - 3].
        guard rest.count >= 20 else { throw fail("\(rest.count + 2) fields, need 22") }
        guard let ppid = pid_t(rest[1]) else { throw fail("field 4 (ppid) \"\(rest[1])\"") }
        guard let threads = Int(rest[17]) else { throw fail("field 20 (num_threads) \"\(rest[17])\"") }
        guard let start = UInt64(rest[19]) else { throw fail("field 22 (starttime) \"\(rest[19])\"") }
        self.init(pid: pid, comm: String(decoding: bytes[(open + 1)..<close], as: UTF8.self),
                  state: rest[0].utf8.first ?? 0, ppid: ppid, threads: threads, startTime: start)
    }
}

/// The parts of /proc/PID/status contid needs.
public struct ProcessStatus: Sendable, Equatable {
    public var name: String
    public var tgid: pid_t
    public var ppid: pid_t
    public var threads: Int
    /// Real, effective, saved, filesystem uid.
    public var uids: [UInt32]
    /// Effective capabilities (bit n = capability n; CAP_AUDIT_CONTROL is 30).
    public var capEff: UInt64

    public init(name: String, tgid: pid_t, ppid: pid_t, threads: Int, uids: [UInt32], capEff: UInt64) {
        self.name = name
        self.tgid = tgid
        self.ppid = ppid
        self.threads = threads
        self.uids = uids
        self.capEff = capEff
    }

    public var realUID: UInt32 { uids[0] }
    public var effectiveUID: UInt32 { uids[1] }

    public static let capAuditControl = 30
    public func hasCapability(_ cap: Int) -> Bool { capEff & (1 << UInt64(cap)) != 0 }

    /// Parses the text of /proc/PID/status.
    public init(parsing text: some Collection<UInt8>, path: String = "status") throws {
        var values: [String: String] = [:]
        for line in text.split(separator: UInt8(ascii: "\n")) {
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let key = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            values[key] = String(decoding: line[line.index(after: colon)...], as: UTF8.self).trimmingSpaces
        }
        func field(_ key: String) throws -> String {
            guard let v = values[key] else { throw LinuxAuditError.malformed(what: path, reason: "no \(key): line") }
            return v
        }
        func number<T: FixedWidthInteger>(_ key: String, radix: Int = 10) throws -> T {
            let s = try field(key)
            guard let v = T(s, radix: radix) else { throw LinuxAuditError.malformed(what: path, reason: "\(key): \"\(s)\"") }
            return v
        }
        let uidText = try field("Uid")
        let uids = uidText.split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { UInt32($0) }
        guard uids.count == 4 else { throw LinuxAuditError.malformed(what: path, reason: "Uid: \"\(uidText)\"") }
        self.init(name: try field("Name"), tgid: try number("Tgid"), ppid: try number("PPid"),
                  threads: try number("Threads"), uids: uids, capEff: try number("CapEff", radix: 16))
    }
}

/// One process of a /proc scan.
public struct ProcessEntry: Sendable, Hashable {
    public var pid: pid_t
    public var ppid: pid_t
    public var startTime: UInt64
    public var threads: Int
    public init(pid: pid_t, ppid: pid_t, startTime: UInt64, threads: Int) {
        self.pid = pid
        self.ppid = ppid
        self.startTime = startTime
        self.threads = threads
    }
}

/// What contid reads about processes, so the engine and tests can substitute their
/// own source. A process that does not exist (or vanished while being read)
/// throws an error whose `errno` is `.noSuchProcess`.
public protocol ProcessSource: Sendable {
    func stat(pid: pid_t) throws -> ProcessStat
    func status(pid: pid_t) throws -> ProcessStatus
    /// /proc/PID/loginuid; 4294967295 = unset.
    func loginUID(pid: pid_t) throws -> UInt32
    /// /proc/PID/sessionid; 4294967295 = unset.
    func sessionID(pid: pid_t) throws -> UInt32
    /// The target of /proc/PID/exe (may end in " (deleted)").
    func executable(pid: pid_t) throws -> String
    /// Children of all the process's threads.
    func children(pid: pid_t) throws -> [pid_t]
    /// The inode of the process's user namespace.
    func userNamespace(pid: pid_t) throws -> UInt64
    /// Every process, in no particular order; processes that exit during the scan are left out.
    func processes() throws -> [ProcessEntry]
}

extension ProcessSource {
    /// Whether the process runs in the initial user namespace (inode 0xEFFFFFFD).
    public func isInInitialUserNamespace(pid: pid_t) throws -> Bool {
        try userNamespace(pid: pid) == NamespaceKind.user.initialInode
    }
}

/// The real /proc (or a copy of its layout under `root`).
public struct ProcFS: ProcessSource {
    public let root: String
    public init(root: String = "/proc") { self.root = root }

    public func stat(pid: pid_t) throws -> ProcessStat {
        let path = "\(root)/\(pid)/stat"
        return try ProcessStat(parsing: try read(path), path: path)
    }

    public func status(pid: pid_t) throws -> ProcessStatus {
        let path = "\(root)/\(pid)/status"
        return try ProcessStatus(parsing: try read(path), path: path)
    }

    public func loginUID(pid: pid_t) throws -> UInt32 { try number("\(root)/\(pid)/loginuid") }
    public func sessionID(pid: pid_t) throws -> UInt32 { try number("\(root)/\(pid)/sessionid") }

    public func executable(pid: pid_t) throws -> String {
        try vanishedAsESRCH { try Syscall.readLink("\(root)/\(pid)/exe") }
    }

    public func children(pid: pid_t) throws -> [pid_t] {
        let tasks = try vanishedAsESRCH { try Syscall.directoryEntries("\(root)/\(pid)/task") }
        var result: [pid_t] = []
        for tid in tasks {
            // A thread can exit between the listing and the read; its children moved on.
            guard let text = try? read("\(root)/\(pid)/task/\(tid)/children") else { continue }
            result += text.split(separator: UInt8(ascii: " ")).compactMap { pid_t(String(decoding: $0, as: UTF8.self)) }
        }
        return result
    }

    public func userNamespace(pid: pid_t) throws -> UInt64 {
        try NamespaceID.of(pid: pid, .user, procRoot: root).inode
    }

    public func processes() throws -> [ProcessEntry] {
        var entries: [ProcessEntry] = []
        for name in try Syscall.directoryEntries(root) {
            guard let pid = pid_t(name), pid > 0 else { continue }
            guard let s = try? stat(pid: pid) else { continue }  // exited during the scan
            entries.append(ProcessEntry(pid: s.pid, ppid: s.ppid, startTime: s.startTime, threads: s.threads))
        }
        return entries
    }

    // MARK: reading

    private func number(_ path: String) throws -> UInt32 {
        let text = String(decoding: try read(path), as: UTF8.self).trimmingSpaces
        guard let v = UInt32(text) else { throw LinuxAuditError.malformed(what: path, reason: "not a number: \"\(text)\"") }
        return v
    }

    /// The whole file. /proc files report size 0, so read until EOF.
    func read(_ path: String) throws -> [UInt8] {
        try vanishedAsESRCH {
            let fd: FileDescriptor
            do { fd = try FileDescriptor.open(path, .readOnly, options: .closeOnExec) } catch let e as Errno {
                throw LinuxAuditError.syscall("open(\(path))", e)
            }
            defer { try? fd.close() }
            var out: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let n: Int
                do { n = try chunk.withUnsafeMutableBytes { try fd.read(into: $0, retryOnInterrupt: true) } } catch let e as Errno {
                    throw LinuxAuditError.syscall("read(\(path))", e)
                }
                if n == 0 { return out }
                out += chunk[..<n]
            }
        }
    }

    /// A file under /proc/PID that is missing means the process is gone.
    private func vanishedAsESRCH<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch LinuxAuditError.syscall(let call, let e) where e == .noSuchFileOrDirectory {
            throw LinuxAuditError.syscall(call, .noSuchProcess)
        }
    }
}

extension String {
    var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
#endif
