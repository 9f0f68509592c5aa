#if os(Linux)
import Glibc
import SystemPackage

// The file-system calls of contidd's state, log and rules directories, wrapped once:
// failures are `LinuxAuditError.syscall("open(PATH)", errno)`.

public enum FileSystem {
    /// Creates `path` and its missing parents (parents 0755, `path` itself `mode`).
    /// An existing `path` gets `mode` only with `enforceMode`.
    public static func makeDirectories(_ path: String, mode: mode_t, enforceMode: Bool = false) throws {
        var partial = ""
        for part in path.split(separator: "/") {
            partial += "/" + part
            let m = partial == path ? mode : 0o755
            do { try Syscall.retrying("mkdir(\(partial))") { Glibc.mkdir(partial, m) } } catch LinuxAuditError.syscall(_, let e)
                where e == .fileExists {}
        }
        if enforceMode { try Syscall.chmod(path, mode) }
    }

    /// Names in a directory, without `.` and `..`, sorted.
    public static func directoryEntries(_ path: String) throws -> [String] {
        try Syscall.directoryEntries(path).sorted()
    }

    /// The whole file, or nil when it does not exist.
    public static func read(_ path: String) throws -> [UInt8]? {
        do { return try readWhole(path) } catch LinuxAuditError.syscall(_, let e) where e == .noSuchFileOrDirectory {
            return nil
        }
    }

    /// The whole file, read until EOF (/proc files report size 0).
    static func readWhole(_ path: String) throws -> [UInt8] {
        let fd = try Syscall.retrying("open(\(path))") { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = try chunk.withUnsafeMutableBytes { raw in
                try Syscall.retrying("read(\(path))") { Glibc.read(fd, raw.baseAddress, raw.count) }
            }
            if n == 0 { return out }
            out += chunk[..<n]
        }
    }

    public static func isDirectory(_ path: String) -> Bool {
        guard let st = try? Syscall.fileStatus(path) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }

    public static func remove(_ path: String) throws {
        do { try Syscall.unlink(path) } catch LinuxAuditError.syscall(_, let e) where e == .noSuchFileOrDirectory {}
    }

    /// Replaces `path` as a whole, never seen half written: PATH.tmp, fsync, rename.
    public static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o600) throws {
        let tmp = path + ".tmp"
        let fd = try Syscall.retrying("open(\(tmp))") { Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
        defer { Glibc.close(fd) }
        try bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                off += try Syscall.retrying("write(\(tmp))") { Glibc.write(fd, raw.baseAddress! + off, raw.count - off) }
            }
        }
        try Syscall.retrying("fsync(\(tmp))") { fsync(fd) }
        try Syscall.retrying("rename(\(tmp))") { rename(tmp, path) }
    }
}

/// An exclusive flock(2) held for the owner's lifetime; the file holds the owner's pid.
public final class LockFile {
    public let path: String
    private let fd: FileDescriptor

    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// Another process holds the lock; its pid as written in the file ("?" if unreadable).
        case held(path: String, holder: String)
        public var description: String {
            switch self { case let .held(path, holder): return "\(path) is held by process \(holder)" }
        }
    }

    /// Takes the lock without waiting; `.held` when another process has it.
    public init(path: String) throws {
        self.path = path
        let raw = try Syscall.retrying("open(\(path))") { Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        let fd = FileDescriptor(rawValue: raw)
        do {
            try Syscall.lock(fd, LOCK_EX | LOCK_NB, path)
        } catch LinuxAuditError.syscall(_, let e) where e == .wouldBlock {
            var holder = [UInt8](repeating: 0, count: 32)
            let n = holder.withUnsafeMutableBytes { pread(raw, $0.baseAddress, $0.count, 0) }
            try? fd.close()
            let pid = n > 0 ? String(decoding: holder[..<n], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "?" : "?"
            throw Failure.held(path: path, holder: pid)
        } catch {
            try? fd.close()
            throw error
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(raw, 0)
        _ = text.withUnsafeBytes { pwrite(raw, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    deinit { try? fd.close() }
}
#endif
