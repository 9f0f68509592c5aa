#if os(Linux)
import CAuditLinux
import Glibc
import Synchronization
import SystemPackage

/// One message of a netlink datagram. `payload` points into the receive buffer and
/// is valid only inside the callback that received it.
public struct NetlinkMessage {
    public var type: UInt16
    public var flags: UInt16
    public var sequence: UInt32
    public var portID: UInt32
    public var payload: UnsafeRawBufferPointer
}

/// What one batch receive saw: datagrams read, and receive-queue overruns (ENOBUFS:
/// the kernel dropped messages; the caller must treat it as a gap).
public struct NetlinkReceiveResult: Sendable, Equatable {
    public var datagrams: Int = 0
    public var gaps: Int = 0
    public init(datagrams: Int = 0, gaps: Int = 0) {
        self.datagrams = datagrams
        self.gaps = gaps
    }
    public var timedOut: Bool { datagrams == 0 && gaps == 0 }
}

/// A reusable receive buffer, owned by one reading thread, so that receiving
/// allocates nothing per message.
///
/// A non-copyable value, not a class: as a function-local class instance it was
/// stack-promoted by Swift 6.3's optimizer, and every error thrown out of a
/// `receive` that borrowed it (each request the kernel refused) left it
/// over-retained at its deallocation, which crashed the process.
public struct NetlinkReceiveBuffer: ~Copyable {
    let storage: UnsafeMutableRawBufferPointer
    public init(capacity: Int = 1 << 16) {
        storage = .allocate(byteCount: capacity, alignment: 8)
    }
    deinit { storage.deallocate() }
}

/// A bound AF_NETLINK socket talking to the kernel (port 0). Shared transport of
/// `AuditNetlink` and `ProcConnector`; it knows nothing of either protocol.
final class NetlinkSocket: Sendable {
    static let headerSize = 16
    // Control message types (linux/netlink.h).
    static let typeError: UInt16 = 2, typeDone: UInt16 = 3

    let descriptor: FileDescriptor
    let name: String
    private let closed = Atomic<Bool>(false)

    init(protocol proto: Int32, name: String, type: Int32, groups: UInt32) throws {
        let fd = try Syscall.socket(AF_NETLINK, type, proto, name)
        do {
            var address = sockaddr_nl()
            address.nl_family = sa_family_t(AF_NETLINK)
            address.nl_pid = 0  // the kernel assigns a port id
            address.nl_groups = groups
            try Syscall.bind(fd, address, name)
        } catch {
            try? fd.close()
            throw error
        }
        descriptor = fd
        self.name = name
    }

    /// The port id the kernel assigned (it appears as nlmsg_pid in our acks).
    func portID() throws -> UInt32 {
        var address = sockaddr_nl()
        try Syscall.socketName(descriptor, into: &address, name)
        return address.nl_pid
    }

    /// Raises the receive buffer past rmem_max with SO_RCVBUFFORCE (needs CAP_NET_ADMIN),
    /// falling back to SO_RCVBUF. Multicast readers overflow quickly without it.
    func setReceiveBufferSize(_ bytes: Int) throws {
        let size = Int32(clamping: bytes)
        do {
            try Syscall.setOption(descriptor, SOL_SOCKET, CAUDIT_SO_RCVBUFFORCE, size, "\(name) SO_RCVBUFFORCE")
        } catch LinuxAuditError.syscall(_, let e) where e == .notPermitted {
            try Syscall.setOption(descriptor, SOL_SOCKET, SO_RCVBUF, size, "\(name) SO_RCVBUF")
        }
    }

    /// Sends one datagram to the kernel.
    func send(_ bytes: UnsafeRawBufferPointer) throws {
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        try Syscall.sendTo(descriptor, bytes, kernel, name)
    }

    /// Waits up to `timeout` (nil: forever) for something to read, then reads up to
    /// `maxDatagrams` datagrams without blocking. ENOBUFS counts as a gap and reading
    /// goes on; datagrams not sent by the kernel (nl_pid != 0) are dropped.
    func receive(into buffer: borrowing NetlinkReceiveBuffer, timeout: Duration?, maxDatagrams: Int,
                 _ body: (UnsafeRawBufferPointer) throws -> Void) throws -> NetlinkReceiveResult {
        var result = NetlinkReceiveResult()
        // A zero timeout reads straight away: the caller polled already, or wants what is there.
        if timeout != .zero {
            guard try Syscall.poll(descriptor, events: Int16(POLLIN), timeout: timeout, name) != 0 else { return result }
        }
        while result.datagrams + result.gaps < maxDatagrams {
            var sender = sockaddr_nl()
            let n: Int?
            do {
                n = try Syscall.receive(descriptor, buffer.storage, flags: Int32(MSG_DONTWAIT), from: &sender, name)
            } catch LinuxAuditError.syscall(_, let e) where e == .noBufferSpace {
                result.gaps += 1
                continue
            }
            guard let n else { break }
            if sender.nl_pid != 0 { continue }
            result.datagrams += 1
            try body(UnsafeRawBufferPointer(rebasing: buffer.storage[..<n]))
        }
        return result
    }

    deinit { close() }

    func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        try? descriptor.close()
    }

    // MARK: message framing

    /// Splits a datagram into messages. Audit's unicast records carry
    /// `nlmsg_len` = payload length (header not counted, facts §1); a single message
    /// whose length is 16 short of the datagram is read as that quirk, using the
    /// recv() length. Returns false if the datagram was malformed (the rest is skipped).
    @discardableResult
    static func forEachMessage(in datagram: UnsafeRawBufferPointer, _ body: (NetlinkMessage) throws -> Void) rethrows -> Bool {
        var offset = 0
        while datagram.count - offset >= headerSize {
            let len = Int(datagram.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            var message = NetlinkMessage(
                type: datagram.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self),
                flags: datagram.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self),
                sequence: datagram.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self),
                portID: datagram.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self),
                payload: UnsafeRawBufferPointer(start: nil, count: 0))
            let remaining = datagram.count - offset
            if offset == 0 && len + headerSize == remaining {
                message.payload = UnsafeRawBufferPointer(rebasing: datagram[headerSize...])
                try body(message)
                return true
            }
            guard len >= headerSize, len <= remaining else { return false }
            message.payload = UnsafeRawBufferPointer(rebasing: datagram[(offset + headerSize)..<(offset + len)])
            try body(message)
            offset += Int(caudit_nlmsg_align(UInt32(len)))
        }
        return true
    }

    /// Writes a netlink header followed by `payload` into a new byte array.
    static func message(type: UInt16, flags: UInt16, sequence: UInt32, payload: UnsafeRawBufferPointer) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: headerSize + payload.count)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(headerSize + payload.count), toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: type, toByteOffset: 4, as: UInt16.self)
            raw.storeBytes(of: flags, toByteOffset: 6, as: UInt16.self)
            raw.storeBytes(of: sequence, toByteOffset: 8, as: UInt32.self)
            raw.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)
            if payload.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: raw[headerSize...]).copyMemory(from: payload)
            }
        }
        return bytes
    }
}
#endif
