import AuditPipeline
import Glibc
import LinuxAudit

/// RUN_DIR/contid.sock: accepts registration clients and answers their requests
/// without ever blocking the loop. At most `maxConnections` at once (more are
/// refused and counted), a client idle for `idleMilliseconds` is closed, replies
/// the socket cannot take wait for POLLOUT, and a client that lets more than
/// `maxPendingReplyBytes` pile up is closed. The peer's identity is taken from the
/// kernel at accept (SO_PEERPIDFD), never from what it sends. A pidfd sent with a
/// request (SCM_RIGHTS) names its target (`answer` gets it pinned).
final class RegistrationServer {
    struct Limits {
        var maxConnections = 64
        var idleMilliseconds: UInt64 = 5000
        var maxPendingReplyBytes = 8 << 20
        /// The listener is left out of poll this long after accept failed (EMFILE).
        var acceptPauseMilliseconds: UInt64 = 1000
    }

    struct Counters: Equatable {
        var refused = 0
        var closedIdle = 0
        var closedFull = 0
    }

    /// A registration client: its replies not sent yet and when it last made progress.
    private final class Client {
        let connection: UnixConnection
        let peer: PeerIdentity?
        var pending: [[UInt8]] = []
        var pendingBytes = 0
        var lastActivity: UInt64
        init(connection: UnixConnection, peer: PeerIdentity?, now: UInt64) {
            self.connection = connection
            self.peer = peer
            lastActivity = now
        }
    }

    let listener: UnixListener
    let limits: Limits
    private let clock: TimeSource
    private let answer: (RegistrationRequest, PeerIdentity, PinnedProcess?) -> [RegistrationReply]
    private let refuseMalformed: (RegistrationProtocolError) -> RegistrationReply
    private var clients: [Int32: Client] = [:]
    private var pausedUntil: UInt64 = 0
    private var listenerIndex = -1
    private var clientIndices: Range<Int> = 0..<0
    private(set) var counters = Counters()

    /// `refuseMalformed` answers a message that does not decode (the registrar counts
    /// it; a malformed request names nobody to blame, so it is never recorded).
    init(listener: UnixListener, clock: TimeSource, limits: Limits = Limits(),
         refuseMalformed: @escaping (RegistrationProtocolError) -> RegistrationReply,
         answer: @escaping (RegistrationRequest, PeerIdentity, PinnedProcess?) -> [RegistrationReply]) {
        self.listener = listener
        self.clock = clock
        self.limits = limits
        self.refuseMalformed = refuseMalformed
        self.answer = answer
    }

    var connectionCount: Int { clients.count }

    /// Adds the listener (unless paused) and every client to this round's poll.
    func register(in set: inout PollSet) {
        let listening = clock.monotonicMilliseconds >= pausedUntil
        listenerIndex = set.add(listening ? listener.descriptor.rawValue : -1, events: Int16(POLLIN))
        let first = set.count
        for (fd, client) in clients {
            set.add(fd, events: Int16(client.pending.isEmpty ? POLLIN : POLLOUT))
        }
        clientIndices = first..<set.count
    }

    /// Serves what poll reported ready.
    func serviceReady(_ set: PollSet) {
        if listenerIndex >= 0, set.revents(listenerIndex) != 0 { acceptConnections() }
        for i in clientIndices where set.revents(i) != 0 { serve(set.entries[i].fd) }
    }

    func acceptConnections() {
        while true {
            let c: UnixConnection
            do {
                guard let accepted = try listener.accept(timeout: .zero) else { return }
                c = accepted
            } catch {
                // Out of descriptors: poll would report the listener again at once.
                pausedUntil = clock.monotonicMilliseconds + limits.acceptPauseMilliseconds
                Log.error("accepting a registration connection: \(error); not accepting for \(limits.acceptPauseMilliseconds) ms")
                return
            }
            guard clients.count < limits.maxConnections else {
                counters.refused += 1
                if counters.refused == 1 || counters.refused % 100 == 0 {
                    Log.warning("\(limits.maxConnections) registration connections open; refused one (\(counters.refused) so far)")
                }
                continue  // closed when `c` goes
            }
            let peer = try? c.peer()
            clients[c.descriptor.rawValue] = Client(connection: c, peer: peer, now: clock.monotonicMilliseconds)
        }
    }

    func serve(_ fd: Int32) {
        guard let client = clients[fd] else { return }
        if !client.pending.isEmpty {
            sendPending(client, fd: fd)
            return
        }
        // Twice the largest request, so an oversized one is answered (E2BIG), not dropped.
        guard let message = try? client.connection.receiveMessage(maxLength: 2 * RegistrationRequest.maxBytes, timeout: .zero)
        else {
            clients[fd] = nil  // closed by the client, or broken
            return
        }
        client.lastActivity = clock.monotonicMilliseconds
        let replies: [RegistrationReply]
        do {
            let request: RegistrationRequest
            do { request = try RegistrationRequest.decode(message.bytes) } catch {
                for d in message.descriptors { try? d.close() }
                throw error
            }
            let target = try Self.target(of: request, message)
            if let peer = client.peer {
                replies = answer(request, peer, target)
            } else {
                replies = [.error(errno: "ESRCH", message: "the requesting process could not be identified")]
            }
        } catch let error as RegistrationProtocolError {
            replies = [refuseMalformed(error)]
        } catch {
            replies = [.error(errno: "ESRCH", message: "the target's pidfd: \(error)")]
        }
        for r in replies {
            let bytes = r.encoded()
            client.pending.append(bytes)
            client.pendingBytes += bytes.count
        }
        sendPending(client, fd: fd)
    }

    /// The pidfd a request came with, pinned; nil without one. At most one, and only
    /// for a request that names a process. Every descriptor of the message is either
    /// in the pin or closed when this returns.
    static func target(of request: RegistrationRequest, _ message: UnixConnection.Message) throws -> PinnedProcess? {
        if message.descriptorsTruncated || message.descriptors.count > 1 {
            for d in message.descriptors { try? d.close() }
            throw RegistrationProtocolError("a request carries at most one descriptor, the target's pidfd")
        }
        guard let fd = message.descriptors.first else { return nil }
        guard request.pid != nil else {
            try? fd.close()
            throw RegistrationProtocolError("\(request.description.prefix { $0 != " " }) names no process; it takes no pidfd")
        }
        do { return try PinnedProcess.received(fd) } catch LinuxAuditError.syscall(let what, let e) where e == .badFileDescriptor {
            throw RegistrationProtocolError(what)
        }
    }

    private func sendPending(_ client: Client, fd: Int32) {
        var sent = 0
        while sent < client.pending.count {
            do {
                try client.connection.send(client.pending[sent], timeout: .zero)
            } catch LinuxAuditError.syscall(_, let e) where e == .timedOut {
                break
            } catch {
                clients[fd] = nil
                return
            }
            client.pendingBytes -= client.pending[sent].count
            sent += 1
        }
        if sent > 0 {
            client.pending.removeFirst(sent)
            client.lastActivity = clock.monotonicMilliseconds
        }
        if client.pendingBytes > limits.maxPendingReplyBytes {
            counters.closedFull += 1
            Log.warning("a registration client does not read its replies; closed (\(counters.closedFull) so far)")
            clients[fd] = nil
        }
    }

    /// Closes connections that made no progress for the idle limit (a request not
    /// sent, replies not read).
    func closeIdleConnections() {
        guard !clients.isEmpty else { return }
        let now = clock.monotonicMilliseconds
        for (fd, client) in clients where now > client.lastActivity + limits.idleMilliseconds {
            counters.closedIdle += 1
            clients[fd] = nil
        }
    }

    func closeAll() { clients.removeAll() }
}
