#if os(Linux)
import AuditCodec
import CAuditLinux
import Glibc
import Synchronization
import SystemPackage

/// `struct audit_status` (facts §1): the AUDIT_GET reply and AUDIT_SET request.
public struct AuditStatus: Sendable, Equatable {
    public var mask: UInt32 = 0
    /// 0 off, 1 on, 2 locked until reboot.
    public var enabled: UInt32 = 0
    /// 0 silent, 1 printk, 2 panic.
    public var failure: UInt32 = 0
    /// The registered audit daemon's pid, 0 for none.
    public var pid: UInt32 = 0
    public var rateLimit: UInt32 = 0
    public var backlogLimit: UInt32 = 0
    public var lost: UInt32 = 0
    public var backlog: UInt32 = 0
    public var featureBitmap: UInt32 = 0
    /// In jiffies.
    public var backlogWaitTime: UInt32 = 0
    public var backlogWaitTimeActual: UInt32 = 0

    public init() {}

    static let size = 44
    // AUDIT_STATUS_* mask bits.
    static let maskEnabled: UInt32 = 0x01, maskFailure: UInt32 = 0x02, maskPID: UInt32 = 0x04,
        maskRateLimit: UInt32 = 0x08, maskBacklogLimit: UInt32 = 0x10, maskBacklogWaitTime: UInt32 = 0x20,
        maskLost: UInt32 = 0x40

    /// Reads as many fields as the kernel sent (older kernels send fewer).
    init(decoding raw: UnsafeRawBufferPointer) {
        func field(_ i: Int) -> UInt32 { raw.count >= 4 * i + 4 ? raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self) : 0 }
        mask = field(0); enabled = field(1); failure = field(2); pid = field(3); rateLimit = field(4)
        backlogLimit = field(5); lost = field(6); backlog = field(7); featureBitmap = field(8)
        backlogWaitTime = field(9); backlogWaitTimeActual = field(10)
    }

    func encoded() -> [UInt8] {
        // The two settings that would lock the configuration or panic the machine are
        // never sent from here (facts §1).
        precondition(mask & Self.maskEnabled == 0 || enabled <= 1, "audit enabled=2 (locked) is never set by contid")
        precondition(mask & Self.maskFailure == 0 || failure <= 1, "audit failure=2 (panic) is never set by contid")
        let values = [mask, enabled, failure, pid, rateLimit, backlogLimit, lost, backlog, featureBitmap,
                      backlogWaitTime, backlogWaitTimeActual]
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v, toByteOffset: 4 * i, as: UInt32.self) }
        }
        return bytes
    }
}

/// What the kernel does when it cannot log (`auditctl -f`). Panic (2) is deliberately
/// not representable.
public enum AuditFailureMode: UInt32, Sendable {
    case silent = 0
    case printk = 1
}

/// A record (or reply) from the audit netlink socket. `payload` is valid only inside
/// the callback; for records it is the text `audit(SEC.MS:SERIAL): ...`.
public typealias AuditNetlinkMessage = NetlinkMessage

/// A NETLINK_AUDIT socket: configuration requests, rules, user messages, and the
/// record stream, either as the registered audit daemon (unicast) or as a read-only
/// listener of multicast group 1.
///
/// A request reads the socket until its ack arrives, so make requests only from the
/// thread that reads records (register/unregister must be made on the reading socket),
/// or from a second socket used for control.
public final class AuditNetlink: Sendable {
    public enum Mode: Sendable {
        /// Receives records only after `register(pid:)`; can make any request.
        case unicast
        /// Joined to AUDIT_NLGRP_READLOG (needs CAP_AUDIT_READ): a best-effort copy of
        /// every record, alongside whatever audit daemon runs.
        case multicast
    }

    // Netlink and audit message types used here.
    static let flagRequest: UInt16 = 0x1, flagAck: UInt16 = 0x4
    static let auditGet: UInt16 = 1000, auditSet: UInt16 = 1001, auditAddRule: UInt16 = 1011,
        auditDelRule: UInt16 = 1012, auditListRules: UInt16 = 1013

    public let mode: Mode
    let socket: NetlinkSocket
    private let sequence = Atomic<UInt32>(0)
    private let gapCount = Atomic<Int>(0)
    private let malformedCount = Atomic<Int>(0)

    /// How long a request waits for the kernel's answer.
    public var requestTimeout: Duration { .seconds(5) }

    /// Opens the socket. `receiveBufferSize` is forced past rmem_max when allowed.
    public init(mode: Mode = .unicast, receiveBufferSize: Int = 8 << 20) throws {
        self.mode = mode
        socket = try NetlinkSocket(protocol: NETLINK_AUDIT, name: "NETLINK_AUDIT", type: Int32(SOCK_RAW.rawValue),
                                   groups: mode == .multicast ? 1 : 0)
        try socket.setReceiveBufferSize(receiveBufferSize)
    }

    public var descriptor: FileDescriptor { socket.descriptor }
    /// Receive-queue overruns seen so far (records lost without the kernel counting them).
    public var gaps: Int { gapCount.load(ordering: .relaxed) }
    /// Datagrams that could not be split into messages.
    public var malformedDatagrams: Int { malformedCount.load(ordering: .relaxed) }

    public func close() { socket.close() }

    // MARK: status

    public func status() throws -> AuditStatus {
        var status: AuditStatus?
        try request(Self.auditGet, "AUDIT_GET", payload: [], reply: .single(Self.auditGet),
                    onReply: { status = AuditStatus(decoding: $0) })
        guard let status else { throw LinuxAuditError.malformed(what: "AUDIT_GET reply", reason: "missing") }
        return status
    }

    /// AUDIT_SET with `status.mask` naming the fields to apply. Returns the ack's value
    /// (positive only for the lost-counter reset).
    @discardableResult
    public func set(_ status: AuditStatus, otherMessages: ((AuditNetlinkMessage) throws -> Void)? = nil) throws -> Int32 {
        try request(Self.auditSet, "AUDIT_SET(mask=0x\(String(status.mask, radix: 16)))", payload: status.encoded(),
                    reply: .none, otherMessages: otherMessages)
    }

    private func set(_ mask: UInt32, _ fill: (inout AuditStatus) -> Void) throws {
        var s = AuditStatus()
        s.mask = mask
        fill(&s)
        try set(s)
    }

    /// Turns auditing on (1) or off (0). Locking (2) is not offered.
    public func setEnabled(_ on: Bool) throws { try set(AuditStatus.maskEnabled) { $0.enabled = on ? 1 : 0 } }
    public func setFailure(_ mode: AuditFailureMode) throws { try set(AuditStatus.maskFailure) { $0.failure = mode.rawValue } }
    public func setBacklogLimit(_ limit: UInt32) throws { try set(AuditStatus.maskBacklogLimit) { $0.backlogLimit = limit } }
    /// In jiffies; the kernel needs the full struct for this one (we always send it).
    public func setBacklogWaitTime(_ jiffies: UInt32) throws {
        try set(AuditStatus.maskBacklogWaitTime) { $0.backlogWaitTime = jiffies }
    }
    public func setRateLimit(_ perSecond: UInt32) throws { try set(AuditStatus.maskRateLimit) { $0.rateLimit = perSecond } }

    /// Resets the kernel's lost counter; returns the count it had.
    @discardableResult
    public func resetLost() throws -> UInt32 {
        var s = AuditStatus()
        s.mask = AuditStatus.maskLost
        return UInt32(clamping: try set(s))
    }

    /// Becomes the audit daemon: records are then sent unicast to this socket.
    /// `pid` must be the calling process (its tgid). Fails with EEXIST while another
    /// daemon is alive. Records arriving before the ack go to `otherMessages`.
    public func register(pid: pid_t = getpid(), otherMessages: ((AuditNetlinkMessage) throws -> Void)? = nil) throws {
        precondition(mode == .unicast, "register a unicast socket: a multicast one would get every record twice")
        var s = AuditStatus()
        s.mask = AuditStatus.maskPID
        s.pid = UInt32(bitPattern: pid)
        try set(s, otherMessages: otherMessages)
    }

    /// Stops being the audit daemon (only the registered process may). Records that
    /// arrive before the ack go to `otherMessages`.
    public func unregister(otherMessages: ((AuditNetlinkMessage) throws -> Void)? = nil) throws {
        var s = AuditStatus()
        s.mask = AuditStatus.maskPID
        try set(s, otherMessages: otherMessages)
    }

    // MARK: rules

    /// Appends `rule` to its filter list, or puts it at the head with `prepend`
    /// (`auditctl -A`). A rule already loaded fails with EEXIST.
    public func addRule(_ rule: AuditRule, prepend: Bool = false) throws {
        try request(Self.auditAddRule, "AUDIT_ADD_RULE", payload: rule.encoded(prepend: prepend), reply: .none)
    }

    /// Deletes a loaded rule (matched on list, action, syscalls and fields); ENOENT if absent.
    public func deleteRule(_ rule: AuditRule) throws {
        try request(Self.auditDelRule, "AUDIT_DEL_RULE", payload: rule.encoded(), reply: .none)
    }

    /// Every rule loaded, in kernel order (list by list).
    public func listRules() throws -> [AuditRule] {
        var rules: [AuditRule] = []
        try request(Self.auditListRules, "AUDIT_LIST_RULES", payload: [], reply: .multipart(Self.auditListRules),
                    onReply: { rules.append(try AuditRule(decoding: $0)) })
        return rules
    }

    // MARK: user messages

    /// Logs `text` as a record of `type` (USER 1005, 1100-1199, 2100-2999; needs
    /// CAP_AUDIT_WRITE). Dropped silently by the kernel while audit is disabled.
    public func sendUserMessage(type: UInt16, text: String) throws {
        // The kernel overwrites the last payload byte with NUL: send one.
        try request(type, "user message \(type)", payload: Array(text.utf8) + [0], reply: .none)
    }

    public func sendUserMessage(type: AuditRecordType, text: String) throws {
        try sendUserMessage(type: type.rawValue, text: text)
    }

    // MARK: receiving

    /// Waits up to `timeout` (nil: forever) and hands every record of up to
    /// `maxDatagrams` datagrams to `body`. Control messages (acks, DONE) are skipped;
    /// ENOBUFS is counted in the result and in `gaps`, and reading goes on.
    @discardableResult
    public func receive(into buffer: borrowing NetlinkReceiveBuffer, timeout: Duration?, maxDatagrams: Int = 64,
                        _ body: (AuditNetlinkMessage) throws -> Void) throws -> NetlinkReceiveResult {
        let result = try socket.receive(into: buffer, timeout: timeout, maxDatagrams: maxDatagrams) { datagram in
            let ok = try NetlinkSocket.forEachMessage(in: datagram) { message in
                if message.type >= 16 { try body(message) }
            }
            if !ok { malformedCount.add(1, ordering: .relaxed) }
        }
        if result.gaps > 0 { gapCount.add(result.gaps, ordering: .relaxed) }
        return result
    }

    // MARK: requests

    enum Reply { case none, single(UInt16), multipart(UInt16) }

    private func nextSequence() -> UInt32 {
        while true {
            let s = sequence.add(1, ordering: .relaxed).newValue
            if s != 0 { return s }  // kernel-originated records carry 0
        }
    }

    /// Sends one REQUEST|ACK message and waits for its ack and reply (either order:
    /// the kernel acks GET/LIST_RULES before the reply, facts §1). A negative ack
    /// throws `.rejected`. Messages that are not about this request go to `otherMessages`.
    @discardableResult
    func request(_ type: UInt16, _ name: String, payload: [UInt8], reply: Reply,
                 otherMessages: ((AuditNetlinkMessage) throws -> Void)? = nil,
                 onReply: (UnsafeRawBufferPointer) throws -> Void = { _ in }) throws -> Int32 {
        let seq = nextSequence()
        let bytes = payload.withUnsafeBytes {
            NetlinkSocket.message(type: type, flags: Self.flagRequest | Self.flagAck, sequence: seq, payload: $0)
        }
        try bytes.withUnsafeBytes { try socket.send($0) }

        let buffer = NetlinkReceiveBuffer()
        let clock = ContinuousClock()
        let deadline = clock.now + requestTimeout
        var ack: Int32?
        var replyDone: Bool
        if case .none = reply { replyDone = true } else { replyDone = false }
        while ack == nil || !replyDone {
            let left = deadline - clock.now
            guard left > .zero else { throw LinuxAuditError.timedOut(request: name) }
            let got = try socket.receive(into: buffer, timeout: left, maxDatagrams: 16) { datagram in
                try NetlinkSocket.forEachMessage(in: datagram) { m in
                    guard m.sequence == seq, m.type < 16 || isReply(m.type, reply) else {
                        try otherMessages?(m)
                        return
                    }
                    switch m.type {
                    case NetlinkSocket.typeError:
                        guard m.payload.count >= 4 else {
                            throw LinuxAuditError.malformed(what: "ack to \(name)", reason: "\(m.payload.count) bytes")
                        }
                        let error = m.payload.loadUnaligned(as: Int32.self)
                        if error < 0 { throw LinuxAuditError.rejected(request: name, Errno(rawValue: -error)) }
                        ack = error
                    case NetlinkSocket.typeDone:
                        replyDone = true
                    default:
                        if isReply(m.type, reply) {
                            try onReply(m.payload)
                            if case .single = reply { replyDone = true }
                        }
                    }
                }
            }
            if got.gaps > 0 { gapCount.add(got.gaps, ordering: .relaxed) }
        }
        return ack ?? 0
    }

    private func isReply(_ type: UInt16, _ reply: Reply) -> Bool {
        switch reply {
        case .none: return false
        case .single(let t), .multipart(let t): return type == t
        }
    }
}
#endif
