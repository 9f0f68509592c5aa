#if os(Linux)
import CAuditLinux
import Glibc
import SystemPackage

// AF_UNIX SOCK_SEQPACKET transport (one request, one reply, message boundaries kept).
// The message format belongs to the pipeline; this file only moves bytes.

func unixAddress(_ path: String) throws -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard bytes.count < capacity else { throw LinuxAuditError.syscall("socket path \(path)", .fileNameTooLong) }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        for (i, b) in bytes.enumerated() { raw[i] = b }
    }
    return address
}

/// A listening SOCK_SEQPACKET socket bound to a path. Removes the path on close.
public final class UnixListener: Sendable {
    public let path: String
    public let descriptor: FileDescriptor

    /// Binds `path` (replacing a stale socket file), sets its mode before listening
    /// so nobody can connect while it is still wider, then listens.
    public init(path: String, mode: mode_t = 0o600, backlog: Int32 = 64) throws {
        let address = try unixAddress(path)
        if let st = try? Syscall.fileStatus(path), st.st_mode & S_IFMT == S_IFSOCK {
            try Syscall.unlink(path)
        }
        let fd = try Syscall.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0, "AF_UNIX \(path)")
        do {
            try Syscall.bind(fd, address, path)
            try Syscall.chmod(path, mode)
            try Syscall.listen(fd, backlog: backlog, path)
        } catch {
            try? fd.close()
            try? Syscall.unlink(path)
            throw error
        }
        self.path = path
        descriptor = fd
    }

    deinit {
        try? descriptor.close()
        try? Syscall.unlink(path)
    }

    /// Waits up to `timeout` (nil: forever) for a connection; nil on timeout.
    public func accept(timeout: Duration?) throws -> UnixConnection? {
        guard try Syscall.poll(descriptor, events: Int16(POLLIN), timeout: timeout, path) != 0 else { return nil }
        return try Syscall.accept(descriptor, nonBlocking: true, path).map(UnixConnection.init(descriptor:))
    }
}

/// A connected SOCK_SEQPACKET socket (either end).
public final class UnixConnection: Sendable {
    public let descriptor: FileDescriptor

    init(descriptor: FileDescriptor) { self.descriptor = descriptor }
    deinit { try? descriptor.close() }

    /// Connects to a listener at `path`.
    public static func connect(path: String) throws -> UnixConnection {
        let address = try unixAddress(path)
        let fd = try Syscall.socket(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue), 0, "AF_UNIX \(path)")
        do {
            try Syscall.connect(fd, address, path)
        } catch {
            try? fd.close()
            throw error
        }
        return UnixConnection(descriptor: fd)
    }

    /// A connected pair (socketpair), for tests and in-process use.
    public static func pair() throws -> (UnixConnection, UnixConnection) {
        let (a, b) = try Syscall.socketPair(Int32(SOCK_SEQPACKET.rawValue))
        return (UnixConnection(descriptor: a), UnixConnection(descriptor: b))
    }

    /// Who is on the other end, from the kernel.
    public func peer() throws -> PeerIdentity { try PeerIdentity.of(socket: descriptor) }

    /// Sends one message, waiting up to `timeout` for room.
    public func send(_ message: [UInt8], timeout: Duration? = .seconds(5)) throws {
        try message.withUnsafeBytes { raw in
            while true {
                if let n = try Syscall.send(descriptor, raw, flags: Int32(MSG_DONTWAIT), "AF_UNIX") {
                    guard n == raw.count else {
                        throw LinuxAuditError.malformed(what: "AF_UNIX send", reason: "sent \(n) of \(raw.count) bytes")
                    }
                    return
                }
                guard try Syscall.poll(descriptor, events: Int16(POLLOUT), timeout: timeout, "AF_UNIX") != 0 else {
                    throw LinuxAuditError.syscall("send(AF_UNIX)", .timedOut)
                }
            }
        }
    }

    /// Sends one message with `descriptor` attached (SCM_RIGHTS), waiting up to `timeout` for room.
    public func send(_ message: [UInt8], attaching descriptor: FileDescriptor, timeout: Duration? = .seconds(5)) throws {
        try message.withUnsafeBytes { raw in
            while true {
                if let n = try Syscall.send(self.descriptor, raw, attaching: descriptor, flags: Int32(MSG_DONTWAIT), "AF_UNIX") {
                    guard n == raw.count else {
                        throw LinuxAuditError.malformed(what: "AF_UNIX sendmsg", reason: "sent \(n) of \(raw.count) bytes")
                    }
                    return
                }
                guard try Syscall.poll(self.descriptor, events: Int16(POLLOUT), timeout: timeout, "AF_UNIX") != 0 else {
                    throw LinuxAuditError.syscall("sendmsg(AF_UNIX)", .timedOut)
                }
            }
        }
    }

    /// One message and the descriptors that came with it (owned by the caller).
    public struct Message {
        public var bytes: [UInt8]
        public var descriptors: [FileDescriptor]
        /// Descriptors were sent that did not fit (the kernel closed them).
        public var descriptorsTruncated: Bool
    }

    /// Like `receive(maxLength:timeout:)`, also taking the descriptors attached to the
    /// message (SCM_RIGHTS). Nil when the peer has closed.
    public func receiveMessage(maxLength: Int = 1 << 16, timeout: Duration? = .seconds(5)) throws -> Message? {
        var buffer = [UInt8](repeating: 0, count: maxLength)
        while true {
            var fds: [FileDescriptor] = []
            var flags: Int32 = 0
            let n = try buffer.withUnsafeMutableBytes {
                try Syscall.receive(descriptor, $0, flags: Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC), descriptors: &fds,
                                    messageFlags: &flags, "AF_UNIX")
            }
            if let n {
                if n == 0 && fds.isEmpty { return nil }
                guard n <= maxLength else {
                    for fd in fds { try? fd.close() }
                    throw LinuxAuditError.syscall("recvmsg(AF_UNIX) of \(n) bytes", .messageTooLong)
                }
                return Message(bytes: Array(buffer[..<n]), descriptors: fds,
                               descriptorsTruncated: flags & Int32(MSG_CTRUNC) != 0)
            }
            let events = try Syscall.poll(descriptor, events: Int16(POLLIN), timeout: timeout, "AF_UNIX")
            guard events != 0 else { throw LinuxAuditError.syscall("recvmsg(AF_UNIX)", .timedOut) }
        }
    }

    /// Receives one message of at most `maxLength` bytes, waiting up to `timeout`
    /// (nil: forever). Returns nil when the peer has closed, throws ETIMEDOUT on
    /// timeout and EMSGSIZE for a longer message.
    public func receive(maxLength: Int = 1 << 16, timeout: Duration? = .seconds(5)) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: maxLength)
        while true {
            let n = try buffer.withUnsafeMutableBytes {
                try Syscall.receive(descriptor, $0, flags: Int32(MSG_DONTWAIT) | Int32(MSG_TRUNC), "AF_UNIX")
            }
            if let n {
                if n == 0 { return nil }
                guard n <= maxLength else { throw LinuxAuditError.syscall("recv(AF_UNIX) of \(n) bytes", .messageTooLong) }
                return Array(buffer[..<n])
            }
            let events = try Syscall.poll(descriptor, events: Int16(POLLIN), timeout: timeout, "AF_UNIX")
            guard events != 0 else { throw LinuxAuditError.syscall("recv(AF_UNIX)", .timedOut) }
        }
    }
}
#endif
