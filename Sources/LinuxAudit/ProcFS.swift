#if os(Linux)
import AuditCodec
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
        self = try bytes.withUnsafeBytes { raw in
            let f = try StatFields(raw, path: path)
            return ProcessStat(pid: try f.pid(), comm: String(decoding: raw[f.commRange], as: UTF8.self),
                               state: f.state, ppid: pid_t(truncatingIfNeeded: try f.number(4, "ppid")),
                               threads: Int(try f.number(20, "num_threads")), startTime: try f.number(22, "starttime"))
        }
    }
}

/// The one reader of /proc/PID/stat's layout, over bytes and without allocating:
/// comm (field 2) is the text between the first "(" and the last ")" (it may hold
/// spaces and parentheses); fields from 3 on count from after that ")".
struct StatFields {
    let bytes: UnsafeRawBufferPointer
    let path: String
    let commRange: Range<Int>
    let pidEnd: Int

    init(_ bytes: UnsafeRawBufferPointer, path: @autoclosure () -> String) throws {
        guard let open = bytes.firstIndex(of: UInt8(ascii: "(")),
              let close = bytes.lastIndex(of: UInt8(ascii: ")")), open < close
        else { throw LinuxAuditError.malformed(what: path(), reason: "no (comm)") }
        self.bytes = bytes
        self.path = path()
        commRange = (open + 1)..<close
        pidEnd = open
    }

    private func fail(_ reason: String) -> LinuxAuditError { .malformed(what: path, reason: reason) }

    func pid() throws -> pid_t {
        var v: Int64 = 0
        var digits = 0
        for c in bytes[..<pidEnd] where c != UInt8(ascii: " ") {
            guard c >= 48, c <= 57 else { throw fail("bad pid") }
            v = v * 10 + Int64(c - 48)
            digits += 1
        }
        guard digits > 0, v <= Int64(Int32.max) else { throw fail("bad pid") }
        return pid_t(v)
    }

    /// Field 3, the state letter.
    var state: UInt8 {
        let i = commRange.upperBound + 2
        return i < bytes.count ? bytes[i] : 0
    }

    /// Field `n` (n >= 3) as a decimal number.
    func number(_ n: Int, _ name: String) throws -> UInt64 {
        var field = 2
        var i = commRange.upperBound + 1
        var value: UInt64 = 0
        var digits = 0
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: " ") || c == 0x0A {
                if field == n, digits > 0 { return value }
                field += 1
                value = 0
                digits = 0
            } else if field == n {
                guard c >= 48, c <= 57 else { throw fail("field \(n) (\(name)) is not a number") }
                value = value &* 10 &+ UInt64(c - 48)
                digits += 1
            }
            i += 1
        }
        if field == n, digits > 0 { return value }
        throw fail("\(field) fields, need \(n)")
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
    /// NSpid: the pid in each pid namespace it is in, the reader's first, its own last.
    public var nsPIDs: [pid_t]

    public init(name: String, tgid: pid_t, ppid: pid_t, threads: Int, uids: [UInt32], capEff: UInt64, nsPIDs: [pid_t] = []) {
        self.name = name
        self.tgid = tgid
        self.ppid = ppid
        self.threads = threads
        self.uids = uids
        self.capEff = capEff
        self.nsPIDs = nsPIDs
    }

    /// Pid 1 of a pid namespace below the reader's (a container's init).
    public var isPIDNamespaceInit: Bool { nsPIDs.count > 1 && nsPIDs.last == 1 }

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
        let nsPIDs = (values["NSpid"] ?? "").split(whereSeparator: { $0 == "\t" || $0 == " " }).compactMap { pid_t($0) }
        self.init(name: try field("Name"), tgid: try number("Tgid"), ppid: try number("PPid"),
                  threads: try number("Threads"), uids: uids, capEff: try number("CapEff", radix: 16), nsPIDs: nsPIDs)
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
    /// The inode of the process's pid namespace (/proc/PID/ns/pid), or with
    /// `forChildren` the one its next children are created in (pid_for_children,
    /// which setns(CLONE_NEWPID) changes). One stat(2): it may run for each fork.
    func pidNamespace(pid: pid_t, forChildren: Bool) throws -> UInt64
    /// Every namespace of the process (/proc/PID/ns/*, eight stat(2) calls): read at
    /// scans, registrations and namespace syscalls, never per fork.
    func namespaces(pid: pid_t) throws -> ProcessNamespaces
    /// The thread ids of a thread group (/proc/PID/task).
    func threads(pid: pid_t) throws -> [pid_t]
    /// Field 22 of /proc/PID/stat, nil when the process is gone. This runs for every
    /// fork on the machine: the real source reads it without allocating.
    func startTime(pid: pid_t) -> UInt64?
}

extension ProcessSource {
    /// Whether the process runs in the initial user namespace (inode 0xEFFFFFFD).
    public func isInInitialUserNamespace(pid: pid_t) throws -> Bool {
        try userNamespace(pid: pid) == NamespaceKind.user.initialInode
    }

    public func startTime(pid: pid_t) -> UInt64? { try? stat(pid: pid).startTime }

    /// Whether a thread group still runs after its leader's EXIT: /proc/TGID has the
    /// same start time, and the leader is not a zombie (another thread exec'd and took
    /// over the pid) or /proc/TGID/task lists another thread (the leader called
    /// pthread_exit).
    public func isThreadGroupAlive(tgid: pid_t, start: UInt64) -> Bool {
        // Most processes are reaped by now: the cheap read first.
        guard startTime(pid: tgid) == start, let stat = try? stat(pid: tgid), stat.startTime == start else { return false }
        if stat.state != UInt8(ascii: "Z"), stat.state != UInt8(ascii: "X") { return true }
        return ((try? threads(pid: tgid)) ?? []).contains { $0 != tgid }
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

    public func threads(pid: pid_t) throws -> [pid_t] {
        try vanishedAsESRCH { try Syscall.directoryEntries("\(root)/\(pid)/task") }.compactMap { pid_t($0) }
    }

    public func namespaces(pid: pid_t) throws -> ProcessNamespaces {
        try ProcessNamespaces.read(pid: pid, procRoot: root)
    }

    public func pidNamespace(pid: pid_t, forChildren: Bool) throws -> UInt64 {
        let path = "\(root)/\(pid)/ns/\(forChildren ? "pid_for_children" : "pid")"
        return try vanishedAsESRCH { UInt64(try Syscall.fileStatus(path).st_ino) }
    }

    public func startTime(pid: pid_t) -> UInt64? {
        guard root == "/proc" else { return try? stat(pid: pid).startTime }
        // "/proc/4194304/stat" and 1 KiB of its text, on the stack.
        return withUnsafeTemporaryAllocation(byteCount: 1024 + 32, alignment: 8) { buf -> UInt64? in
            let path = buf.baseAddress!.assumingMemoryBound(to: CChar.self)
            var n = 0
            func put(_ c: UInt8) { buf[n] = c; n += 1 }
            for c in "/proc/".utf8 { put(c) }
            var digits: (UInt64, UInt64) = (0, 0)
            let count = withUnsafeMutableBytes(of: &digits) { d -> Int in
                var v = pid, k = 0
                repeat { d[k] = UInt8(48 + v % 10); v /= 10; k += 1 } while v > 0
                return k
            }
            withUnsafeBytes(of: digits) { d in for k in stride(from: count - 1, through: 0, by: -1) { put(d[k]) } }
            for c in "/stat".utf8 { put(c) }
            put(0)
            guard let fd = try? Syscall.retrying("open(stat)", { Glibc.open(path, O_RDONLY | O_CLOEXEC) }) else { return nil }
            defer { Glibc.close(fd) }
            let text = UnsafeMutableRawBufferPointer(rebasing: buf[32...])
            guard let read = try? Syscall.retrying("read(stat)", { Glibc.read(fd, text.baseAddress, text.count) }), read > 0,
                  let fields = try? StatFields(UnsafeRawBufferPointer(rebasing: text[..<read]), path: "stat")
            else { return nil }
            return try? fields.number(22, "starttime")
        }
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

    /// The whole file; a missing one means the process is gone (ESRCH).
    func read(_ path: String) throws -> [UInt8] {
        try vanishedAsESRCH { try FileSystem.readWhole(path) }
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
