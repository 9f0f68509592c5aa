#if os(Linux)
import CAuditLinux
import Glibc
import SystemPackage

// Every raw system call LinuxAudit makes, wrapped once: EINTR is retried, failure
// becomes `LinuxAuditError.syscall(what, errno)` where `what` names the call and its
// object (`"bind(NETLINK_AUDIT)"`). Callers never read the global errno.
enum Syscall {
    /// Runs `body` until it does not fail with EINTR; a negative result throws.
    @discardableResult
    static func retrying<R: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> R) throws -> R {
        while true {
            let r = body()
            if r >= 0 { return r }
            let e = Errno(rawValue: Glibc.errno)
            if e == .interrupted { continue }
            throw LinuxAuditError.syscall(what(), e)
        }
    }

    /// Runs `body` once; a negative result throws, EINTR included (for calls a loop
    /// simply makes again, as poll).
    @discardableResult
    static func retryingOnce<R: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> R) throws -> R {
        let r = body()
        if r >= 0 { return r }
        throw LinuxAuditError.syscall(what(), Errno(rawValue: Glibc.errno))
    }

    /// Like `retrying`, but returns nil when the call would block (EAGAIN).
    static func nonblocking<R: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> R) throws -> R? {
        do {
            return try retrying(what(), body)
        } catch LinuxAuditError.syscall(_, let e) where e == .resourceTemporarilyUnavailable {
            return nil
        }
    }

    // MARK: sockets

    static func socket(_ domain: Int32, _ type: Int32, _ proto: Int32, _ what: String) throws -> FileDescriptor {
        let fd = try retrying("socket(\(what))") { Glibc.socket(domain, type | Int32(SOCK_CLOEXEC.rawValue), proto) }
        return FileDescriptor(rawValue: fd)
    }

    static func socketPair(_ type: Int32) throws -> (FileDescriptor, FileDescriptor) {
        var fds: (Int32, Int32) = (-1, -1)
        try withUnsafeMutableBytes(of: &fds) { raw in
            _ = try retrying("socketpair(AF_UNIX)") {
                Glibc.socketpair(AF_UNIX, type | Int32(SOCK_CLOEXEC.rawValue), 0, raw.baseAddress!.assumingMemoryBound(to: Int32.self))
            }
        }
        return (FileDescriptor(rawValue: fds.0), FileDescriptor(rawValue: fds.1))
    }

    static func bind<A>(_ fd: FileDescriptor, _ address: A, _ what: String) throws {
        try withUnsafeBytes(of: address) { raw in
            _ = try retrying("bind(\(what))") {
                Glibc.bind(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
        }
    }

    static func connect<A>(_ fd: FileDescriptor, _ address: A, _ what: String) throws {
        try withUnsafeBytes(of: address) { raw in
            _ = try retrying("connect(\(what))") {
                Glibc.connect(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(raw.count))
            }
        }
    }

    static func listen(_ fd: FileDescriptor, backlog: Int32, _ what: String) throws {
        try retrying("listen(\(what))") { Glibc.listen(fd.rawValue, backlog) }
    }

    /// nil when no connection is pending on a non-blocking listener.
    static func accept(_ fd: FileDescriptor, nonBlocking: Bool, _ what: String) throws -> FileDescriptor? {
        var flags = Int32(SOCK_CLOEXEC.rawValue)
        if nonBlocking { flags |= Int32(SOCK_NONBLOCK.rawValue) }
        return try nonblocking("accept4(\(what))") { caudit_accept4(fd.rawValue, flags) }.map(FileDescriptor.init(rawValue:))
    }

    static func sendTo<A>(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, _ address: A, _ what: String) throws {
        try withUnsafeBytes(of: address) { addr in
            let n = try retrying("sendto(\(what))") {
                Glibc.sendto(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL),
                             addr.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(addr.count))
            }
            if n != bytes.count { throw LinuxAuditError.malformed(what: "sendto(\(what))", reason: "sent \(n) of \(bytes.count) bytes") }
        }
    }

    /// nil when the call would block.
    static func send(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, flags: Int32 = 0, _ what: String) throws -> Int? {
        try nonblocking("send(\(what))") { Glibc.send(fd.rawValue, bytes.baseAddress, bytes.count, flags | Int32(MSG_NOSIGNAL)) }
    }

    /// nil when the call would block. ENOBUFS is thrown like any other error.
    static func receive(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32, _ what: String) throws -> Int? {
        try nonblocking("recv(\(what))") { Glibc.recv(fd.rawValue, buffer.baseAddress, buffer.count, flags) }
    }

    /// sendmsg(2) of one message with `descriptor` attached (SCM_RIGHTS); nil when the call would block.
    static func send(_ fd: FileDescriptor, _ bytes: UnsafeRawBufferPointer, attaching descriptor: FileDescriptor,
                     flags: Int32 = 0, _ what: String) throws -> Int? {
        try nonblocking("sendmsg(\(what), SCM_RIGHTS)") {
            caudit_send_with_fd(fd.rawValue, bytes.baseAddress, bytes.count, descriptor.rawValue, flags | Int32(MSG_NOSIGNAL))
        }
    }

    /// recvmsg(2) of one message and the descriptors attached to it (close-on-exec; at
    /// most CAUDIT_MAX_PASSED_FDS, the kernel closes the rest and sets MSG_CTRUNC).
    /// nil when the call would block.
    static func receive(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32,
                        descriptors: inout [FileDescriptor], messageFlags: inout Int32, _ what: String) throws -> Int? {
        var fds = [Int32](repeating: -1, count: Int(CAUDIT_MAX_PASSED_FDS))
        var count: Int32 = 0
        var mflags: Int32 = 0
        let n = try nonblocking("recvmsg(\(what))") {
            caudit_receive_with_fds(fd.rawValue, buffer.baseAddress, buffer.count, flags, &fds, CAUDIT_MAX_PASSED_FDS, &count, &mflags)
        }
        descriptors = fds.prefix(Int(count)).map(FileDescriptor.init(rawValue:))
        messageFlags = mflags
        return n
    }

    /// recvfrom(2) with a sender address of type `A`; nil when the call would block.
    static func receive<A>(_ fd: FileDescriptor, _ buffer: UnsafeMutableRawBufferPointer, flags: Int32, from sender: inout A,
                           _ what: String) throws -> Int? {
        try withUnsafeMutableBytes(of: &sender) { addr in
            var len = socklen_t(addr.count)
            return try nonblocking("recvfrom(\(what))") {
                Glibc.recvfrom(fd.rawValue, buffer.baseAddress, buffer.count, flags,
                               addr.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
            }
        }
    }

    static func setOption<V>(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, _ value: V, _ what: String) throws {
        try withUnsafeBytes(of: value) { raw in
            _ = try retrying("setsockopt(\(what))") { Glibc.setsockopt(fd.rawValue, level, name, raw.baseAddress, socklen_t(raw.count)) }
        }
    }

    /// getsockopt(2) into a value of type `V`; returns the length the kernel wrote.
    @discardableResult
    static func getOption<V>(_ fd: FileDescriptor, _ level: Int32, _ name: Int32, into value: inout V, _ what: String) throws -> Int {
        try withUnsafeMutableBytes(of: &value) { raw in
            var len = socklen_t(raw.count)
            _ = try retrying("getsockopt(\(what))") { Glibc.getsockopt(fd.rawValue, level, name, raw.baseAddress, &len) }
            return Int(len)
        }
    }

    static func socketName<A>(_ fd: FileDescriptor, into address: inout A, _ what: String) throws {
        try withUnsafeMutableBytes(of: &address) { raw in
            var len = socklen_t(raw.count)
            _ = try retrying("getsockname(\(what))") {
                Glibc.getsockname(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: sockaddr.self), &len)
            }
        }
    }

    /// poll(2) on one descriptor; returns revents, 0 on timeout. A nil timeout waits forever.
    static func poll(_ fd: FileDescriptor, events: Int16, timeout: Duration?, _ what: String) throws -> Int16 {
        var p = pollfd(fd: fd.rawValue, events: events, revents: 0)
        let ms: Int32 = timeout.map { d in
            let (s, atto) = d.components
            let total = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
            return Int32(clamping: max(0, total))
        } ?? -1
        let n = try retrying("poll(\(what))") { Glibc.poll(&p, 1, ms) }
        return n == 0 ? 0 : p.revents
    }

    // MARK: files

    static func fileStatus(_ path: String) throws -> Glibc.stat {
        var st = Glibc.stat()
        try retrying("stat(\(path))") { stat(path, &st) }
        return st
    }

    static func fileStatus(_ fd: FileDescriptor, _ what: String) throws -> Glibc.stat {
        var st = Glibc.stat()
        try retrying("fstat(\(what))") { fstat(fd.rawValue, &st) }
        return st
    }

    static func readLink(_ path: String) throws -> String {
        var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try retrying("readlink(\(path))") { Glibc.readlink(path, &buf, buf.count - 1) }
        return String(decoding: buf[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func lock(_ fd: FileDescriptor, _ op: Int32, _ what: String) throws {
        try retrying("flock(\(what))") { flock(fd.rawValue, op) }
    }

    static func unlink(_ path: String) throws {
        try retrying("unlink(\(path))") { Glibc.unlink(path) }
    }

    static func chmod(_ path: String, _ mode: mode_t) throws {
        try retrying("chmod(\(path))") { Glibc.chmod(path, mode) }
    }

    /// Names in a directory, without `.` and `..`.
    static func directoryEntries(_ path: String) throws -> [String] {
        guard let dir = Glibc.opendir(path) else {
            throw LinuxAuditError.syscall("opendir(\(path))", Errno(rawValue: Glibc.errno))
        }
        defer { Glibc.closedir(dir) }
        var names: [String] = []
        while let entry = Glibc.readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    // MARK: pidfd, nsfs

    static func pidfdOpen(_ pid: pid_t) throws -> FileDescriptor {
        FileDescriptor(rawValue: try retrying("pidfd_open(\(pid))") { caudit_pidfd_open(pid, 0) })
    }

    static func pidfdSendSignal(_ fd: FileDescriptor, _ signal: Int32, _ what: String) throws {
        try retrying("pidfd_send_signal(\(what), \(signal))") { caudit_pidfd_send_signal(fd.rawValue, signal) }
    }

    static func ioctl(_ fd: FileDescriptor, _ request: UInt, into value: inout UInt64, _ what: String) throws {
        try retrying("ioctl(\(what))") { caudit_ioctl_u64(fd.rawValue, request, &value) }
    }

    /// name_to_handle_at(2) of the open file itself (AT_EMPTY_PATH) into `handle`
    /// laid out as struct file_handle.
    static func nameToHandle(_ fd: FileDescriptor, _ handle: UnsafeMutableRawBufferPointer, _ what: String) throws {
        var mountID: Int32 = 0
        try retrying("name_to_handle_at(\(what))") {
            caudit_name_to_handle_at(fd.rawValue, "", handle.baseAddress, &mountID, CAUDIT_AT_EMPTY_PATH)
        }
    }

    static func openByHandle(_ mountFD: FileDescriptor, _ handle: UnsafeMutableRawBufferPointer, _ what: String) throws -> FileDescriptor {
        FileDescriptor(rawValue: try retrying("open_by_handle_at(\(what))") {
            caudit_open_by_handle_at(mountFD.rawValue, handle.baseAddress, O_RDONLY | O_CLOEXEC)
        })
    }
}
#endif
