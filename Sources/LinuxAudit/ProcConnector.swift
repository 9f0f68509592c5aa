#if os(Linux)
import CAuditLinux
import Glibc
import Synchronization
import SystemPackage

/// One process event from the proc connector (facts §5). "pid" is a thread id,
/// "tgid" the process id; all are init-namespace pids.
public struct ProcEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// The kernel's answer to a subscribe/unsubscribe.
        case ack(error: UInt32)
        case fork(parentPID: pid_t, parentTGID: pid_t, childPID: pid_t, childTGID: pid_t)
        case exec(pid: pid_t, tgid: pid_t)
        case uid(pid: pid_t, tgid: pid_t, real: UInt32, effective: UInt32)
        case gid(pid: pid_t, tgid: pid_t, real: UInt32, effective: UInt32)
        case sid(pid: pid_t, tgid: pid_t)
        /// `tracerPID` 0 on detach.
        case ptrace(pid: pid_t, tgid: pid_t, tracerPID: pid_t, tracerTGID: pid_t)
        case comm(pid: pid_t, tgid: pid_t, comm: String)
        case coredump(pid: pid_t, tgid: pid_t, parentPID: pid_t, parentTGID: pid_t)
        /// `exitCode` is a wait status (exit 3 -> 768); `exitSignal` is what the parent gets (17 = SIGCHLD).
        case exit(pid: pid_t, tgid: pid_t, exitCode: UInt32, exitSignal: UInt32, parentPID: pid_t, parentTGID: pid_t)
        case unknown(what: UInt32)
    }
    public var cpu: UInt32
    /// ktime since boot; order events by this, not by cn_msg.seq (per CPU).
    public var timestampNS: UInt64
    public var kind: Kind

    static let size = 40  // struct proc_event

    public init(cpu: UInt32 = 0, timestampNS: UInt64 = 0, kind: Kind) {
        self.cpu = cpu
        self.timestampNS = timestampNS
        self.kind = kind
    }

    /// Reads a `struct proc_event`.
    init?(decoding raw: UnsafeRawBufferPointer) {
        guard raw.count >= Self.size else { return nil }
        func i32(_ off: Int) -> Int32 { raw.loadUnaligned(fromByteOffset: 16 + off, as: Int32.self) }
        func u32(_ off: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: 16 + off, as: UInt32.self) }
        let what = raw.loadUnaligned(as: UInt32.self)
        cpu = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        timestampNS = raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
        switch what {
        case 0: kind = .ack(error: u32(0))
        case 0x1: kind = .fork(parentPID: i32(0), parentTGID: i32(4), childPID: i32(8), childTGID: i32(12))
        case 0x2: kind = .exec(pid: i32(0), tgid: i32(4))
        case 0x4: kind = .uid(pid: i32(0), tgid: i32(4), real: u32(8), effective: u32(12))
        case 0x40: kind = .gid(pid: i32(0), tgid: i32(4), real: u32(8), effective: u32(12))
        case 0x80: kind = .sid(pid: i32(0), tgid: i32(4))
        case 0x100: kind = .ptrace(pid: i32(0), tgid: i32(4), tracerPID: i32(8), tracerTGID: i32(12))
        case 0x200:
            let name = UnsafeRawBufferPointer(rebasing: raw[(16 + 8)..<(16 + 24)])
            kind = .comm(pid: i32(0), tgid: i32(4), comm: String(decoding: name.prefix { $0 != 0 }, as: UTF8.self))
        case 0x4000_0000: kind = .coredump(pid: i32(0), tgid: i32(4), parentPID: i32(8), parentTGID: i32(12))
        case 0x8000_0000:
            kind = .exit(pid: i32(0), tgid: i32(4), exitCode: u32(8), exitSignal: u32(12), parentPID: i32(16), parentTGID: i32(20))
        default: kind = .unknown(what: what)
        }
    }
}

/// Kernel-side event filter (Linux >= 6.6, `struct proc_input`). Older kernels ignore
/// a filtered subscription entirely, so pass nil there.
public struct ProcEventFilter: OptionSet, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let fork = ProcEventFilter(rawValue: 0x1)
    public static let exec = ProcEventFilter(rawValue: 0x2)
    public static let uid = ProcEventFilter(rawValue: 0x4)
    public static let gid = ProcEventFilter(rawValue: 0x40)
    public static let sid = ProcEventFilter(rawValue: 0x80)
    public static let ptrace = ProcEventFilter(rawValue: 0x100)
    public static let comm = ProcEventFilter(rawValue: 0x200)
    /// Only exits with a non-zero code (use instead of `.exit`).
    public static let nonzeroExit = ProcEventFilter(rawValue: UInt32(PROC_EVENT_NONZERO_EXIT))
    public static let coredump = ProcEventFilter(rawValue: 0x4000_0000)
    public static let exit = ProcEventFilter(rawValue: 0x8000_0000)
}

/// A NETLINK_CONNECTOR socket subscribed to process events (fork, exec, exit, ...).
/// Unsubscribes on `close()` / deinit.
public final class ProcConnector: Sendable {
    static let cnIdxProc: UInt32 = 1, cnValProc: UInt32 = 1
    static let listen: UInt32 = 1, ignore: UInt32 = 2

    let socket: NetlinkSocket
    private let gapCount = Atomic<Int>(0)
    private let closed = Atomic<Bool>(false)

    /// Opens, enlarges the receive buffer and subscribes. The subscriber must be in
    /// the initial user and pid namespaces or the kernel silently sends nothing.
    public init(receiveBufferSize: Int = 8 << 20, filter: ProcEventFilter? = nil) throws {
        socket = try NetlinkSocket(protocol: NETLINK_CONNECTOR, name: "NETLINK_CONNECTOR", type: Int32(SOCK_DGRAM.rawValue),
                                   groups: Self.cnIdxProc)
        try socket.setReceiveBufferSize(receiveBufferSize)
        try control(Self.listen, filter: filter)
    }

    deinit { close() }

    public var descriptor: FileDescriptor { socket.descriptor }
    /// Receive-queue overruns so far: events were lost; rescan /proc.
    public var gaps: Int { gapCount.load(ordering: .relaxed) }

    /// Sends PROC_CN_MCAST_IGNORE and closes the socket.
    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        try? control(Self.ignore, filter: nil)
        socket.close()
    }

    /// Waits up to `timeout` (nil: forever), then hands the events of up to
    /// `maxDatagrams` datagrams to `body`. Subscription acks are skipped. A result
    /// with `gaps > 0` means events were dropped before we could read them.
    @discardableResult
    public func receive(into buffer: borrowing NetlinkReceiveBuffer, timeout: Duration?, maxDatagrams: Int = 256,
                        _ body: (ProcEvent) throws -> Void) throws -> NetlinkReceiveResult {
        let result = try socket.receive(into: buffer, timeout: timeout, maxDatagrams: maxDatagrams) { datagram in
            try NetlinkSocket.forEachMessage(in: datagram) { m in
                let p = m.payload
                guard p.count >= 20,
                      p.loadUnaligned(as: UInt32.self) == Self.cnIdxProc,
                      p.loadUnaligned(fromByteOffset: 4, as: UInt32.self) == Self.cnValProc,
                      let event = ProcEvent(decoding: UnsafeRawBufferPointer(rebasing: p[20...]))
                else { return }
                if case .ack = event.kind { return }
                try body(event)
            }
        }
        if result.gaps > 0 { gapCount.add(result.gaps, ordering: .relaxed) }
        return result
    }

    private func control(_ op: UInt32, filter: ProcEventFilter?) throws {
        // struct cn_msg (20 bytes) followed by the op, or by struct proc_input to filter.
        let dataLen = filter == nil ? MemoryLayout<UInt32>.size : MemoryLayout<caudit_proc_input>.size
        var payload = [UInt8](repeating: 0, count: Int(caudit_cn_msg_size()) + dataLen)
        payload.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: Self.cnIdxProc, toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: Self.cnValProc, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt16(dataLen), toByteOffset: 16, as: UInt16.self)
            raw.storeBytes(of: op, toByteOffset: 20, as: UInt32.self)
            if let filter { raw.storeBytes(of: filter.rawValue, toByteOffset: 24, as: UInt32.self) }
        }
        let bytes = payload.withUnsafeBytes {
            NetlinkSocket.message(type: NetlinkSocket.typeDone, flags: 0, sequence: 0, payload: $0)
        }
        try bytes.withUnsafeBytes { try socket.send($0) }
    }
}
#endif
