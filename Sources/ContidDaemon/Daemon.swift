import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit

// contidd: one thread, one poll loop over the audit source, the proc connector,
// the registration socket and its connections, and the signal pipe. The
// registry is single-threaded; nothing here takes a lock.
//
// Per batch: read the records, drain the proc connector (every FORK behind a
// record is queued by then), then assemble, attribute, filter and write.

public final class Daemon {
    public let configuration: DaemonConfiguration
    private let ownPID = getpid()

    private var source: AuditSource = .netlink
    private var control: AuditNetlink!
    private var reader: AuditNetlink?
    private var session: KernelAuditSession?
    private var registry: ContainerRegistry!
    private var tracker: ProcessTracker!
    private var registrar: Registrar!
    private var log: HostLogWriter!
    private var listener: UnixListener?
    private var connections: [Int32: Client] = [:]
    private var assembler: EventAssembler!
    private let batch = RecordBatch()
    private let receiveBuffer = NetlinkReceiveBuffer(capacity: 1 << 17)
    private var ruleFilter = ContainerRuleFilter()
    private var signalFD: Int32 = -1
    private var stopping = false
    private var stdinOpen = true
    private var stdinRemainder: [UInt8] = []

    /// Records contid's own messages reach the log through the kernel when it audits;
    /// otherwise they are written directly with contidd's clock.
    private var submitThroughKernel = true
    private var ownSerial: UInt32 = 0

    // Counters (SPEC §8: loss is always visible).
    private var streamMs: UInt64 = 0
    private var kernelLostAtStart: UInt32 = 0
    private var kernelLost: UInt32 = 0
    private var eventsSeen = 0
    private var trackingEvents = 0
    private var eventsFiltered = 0
    private var submitFailures = 0
    private var writeErrors = 0
    private var reregistrations = 0
    private var ruleChecks = 0
    private var lastReport = ""
    private let trackingKeyBytes = Array(" key=\"\(AuditRule.trackingKey)\"".utf8)

    private var snapshotPath: String { configuration.stateDirectory + "/registry.snapshot" }
    private var socketPath: String { configuration.runDirectory + "/contid.sock" }

    public init(configuration: DaemonConfiguration) {
        self.configuration = configuration
    }

    // MARK: run

    /// Loads `rules` (parsed rules files) into the kernel and runs until SIGTERM/SIGINT
    /// (or, as a plugin, end of input). Returns the exit status.
    public func run(rules: [RuleLine]) throws -> Int32 {
        ruleLinesToLoad = rules
        signalFD = try SignalPipe.install()
        // One contidd per state directory: the lock is taken before kernel.state,
        // the snapshot or the socket are touched.
        try makeDirectory(configuration.stateDirectory, mode: 0o700)
        try takeLock()
        try makeDirectory(configuration.logDirectory, mode: 0o700)
        try makeDirectory(configuration.runDirectory, mode: 0o755)

        control = try AuditNetlink(mode: .unicast, receiveBufferSize: 1 << 20)
        let status = try control.status()
        source = resolveSource(configuration.source, status: status)
        Log.info("pid \(ownPID), source \(source.rawValue), log \(configuration.logDirectory)/audit.log (\(configuration.logFormat.rawValue))")

        log = try HostLogWriter(directory: configuration.logDirectory, format: configuration.logFormat,
                                maxFileBytes: configuration.maxLogFileMB << 20, numLogs: configuration.numLogs,
                                flush: configuration.flush, frequency: configuration.frequency)
        registry = loadRegistry()
        tracker = try ProcessTracker(registry: registry, graceMilliseconds: configuration.graceMilliseconds)
        tracker.scan()
        tracker.drain()
        registrar = Registrar(registry: registry, tracker: tracker)
        assembler = EventAssembler(timeoutMilliseconds: 2000) { [unowned self] view in self.handle(view) }

        let session = try KernelAuditSession(control: control, stateDirectory: configuration.stateDirectory)
        self.session = session
        // From the first change to the kernel to the loop, any error puts the kernel back.
        do {
            // A silent proc connector would leave every process untracked.
            try tracker.verifySubscription()
            try startSource(session)
            kernelLostAtStart = (try? control.status().lost) ?? 0
            kernelLost = kernelLostAtStart
            submitThroughKernel = source == .netlink || ((try? control.status().enabled) ?? 0) == 1

            listener = try UnixListener(path: socketPath, mode: mode_t(configuration.socketMode))
            submitPendingRecords()
            saveSnapshot()
        } catch {
            session.restore(reader: reader, beforeUnregister: {})
            throw error
        }
        Log.info("tracking \(registry.processCount) processes, \(registry.containerCount) containers; registration socket \(socketPath)")

        loop()
        shutdown()
        return 0
    }

    private func resolveSource(_ wanted: AuditSource, status: AuditStatus) -> AuditSource {
        guard wanted == .auto else { return wanted }
        if status.pid != 0, kill(pid_t(status.pid), 0) == 0 || errno == EPERM { return .multicast }
        return .netlink
    }

    private func startSource(_ session: KernelAuditSession) throws {
        switch source {
        case .netlink, .auto:
            let r = try AuditNetlink(mode: .unicast, receiveBufferSize: 64 << 20)
            reader = r
            do {
                try session.becomeAuditDaemon(reader: r) { [unowned self] m in self.batch.appendKernelRecord(type: m.type, payload: m.payload) }
                // Records that arrived while registering are in the batch: processed, not lost.
                processBatch()
            } catch LinuxAuditError.rejected(_, let e) where e == .fileExists {
                throw DaemonError("another audit daemon is registered (pid \((try? control.status().pid) ?? 0)); stop it or use --source multicast")
            }
        case .multicast:
            reader = try AuditNetlink(mode: .multicast, receiveBufferSize: 64 << 20)
        case .plugin:
            _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
        }
        var backlog = configuration.backlogLimit
        // Beside auditd (multicast, plugin) the tracking rules would fill auditd's log with
        // every fork, exec and exit; the proc connector gives the process facts.
        ruleFilter = try session.loadRules(ruleLinesToLoad, backlog: &backlog, withTracking: source == .netlink)
        if source == .netlink { try session.setBacklogLimit(backlog) }
    }

    private var ruleLinesToLoad: [RuleLine] = []

    // MARK: the loop

    private func loop() {
        var lastHousekeeping: UInt64 = 0
        var lastSnapshot = Clock.monotonicMilliseconds()
        var lastReportTime = lastSnapshot
        var lastStatus = lastSnapshot
        var snapshotForks = 0
        var fds: [pollfd] = []
        while !stopping {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0))
            let sourceFD = source == .plugin ? (stdinOpen ? 0 : -1) : reader!.descriptor.rawValue
            fds.append(pollfd(fd: sourceFD, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: tracker.descriptor, events: Int16(POLLIN), revents: 0))
            let listening = Clock.monotonicMilliseconds() >= listenerPausedUntil
            fds.append(pollfd(fd: listening ? listener?.descriptor.rawValue ?? -1 : -1, events: Int16(POLLIN), revents: 0))
            for (fd, client) in connections {
                fds.append(pollfd(fd: fd, events: Int16(client.pending.isEmpty ? POLLIN : POLLOUT), revents: 0))
            }
            let n = poll(&fds, nfds_t(fds.count), 100)
            if n < 0 && errno != EINTR { Log.error("poll: \(String(cString: strerror(errno)))"); break }

            if fds[0].revents != 0 { handleSignals() }
            var sourceIdle = true
            if n > 0, fds[1].revents != 0 { sourceIdle = !readSource() }
            if !sourceIdle, configuration.batchMilliseconds > 0, lastBatchDatagrams < Self.smallBatch {
                // Caught up, with records trickling in one by one (kauditd sends one datagram per
                // record): let the next ones gather, one wakeup per batch. Under load the batches
                // are large and reading goes on at once, so a burst never waits on this pause.
                var pause = timespec(tv_sec: 0, tv_nsec: configuration.batchMilliseconds * 1_000_000)
                nanosleep(&pause, nil)
            }
            if fds[2].revents != 0 { tracker.drain() }
            if fds[3].revents != 0 { acceptConnections() }
            for p in fds.dropFirst(4) where p.revents != 0 { serveConnection(p.fd, revents: p.revents) }

            let now = Clock.monotonicMilliseconds()
            if sourceIdle || now - lastHousekeeping >= 100 {
                lastHousekeeping = now
                let wall = Clock.wallMilliseconds()
                tracker.drain()
                tracker.applyDueExits(streamMs: streamMs, now: wall, streamIdle: sourceIdle)
                if sourceIdle {
                    assembler.advanceClock(to: AuditTime(seconds: wall / 1000, milliseconds: UInt16(wall % 1000)))
                }
                writeOverdueRecords(all: false)
                if !connections.isEmpty { closeIdleConnections(now: now) }
                if registry.pendingRecordCount > 0 {
                    submitPendingRecords()
                    saveSnapshot()
                    lastSnapshot = now
                }
                if configuration.snapshotInterval > 0, now - lastSnapshot >= UInt64(configuration.snapshotInterval) * 1000,
                   tracker.forks + tracker.exits != snapshotForks {
                    snapshotForks = tracker.forks + tracker.exits
                    saveSnapshot()
                    lastSnapshot = now
                }
                if now - lastStatus >= 1000 {
                    lastStatus = now
                    if let s = try? control.status() {
                        kernelLost = s.lost
                        if source == .netlink, s.pid != UInt32(bitPattern: ownPID) { reregister() }
                    }
                    ruleChecks += 1
                    if ruleChecks % 2 == 0 {
                        do { try session?.maintainOwnRules() } catch { Log.error("checking contidd's rules: \(error)") }
                    }
                }
                if configuration.reportInterval > 0, now - lastReportTime >= UInt64(configuration.reportInterval) * 1000 {
                    lastReportTime = now
                    reportLosses(always: false)
                }
            }
            flushLog()
        }
    }

    /// Datagrams read by the last readSource(), and the batch size below which the
    /// source counts as caught up (reading then pauses for batch_ms).
    private var lastBatchDatagrams = 0
    private static let smallBatch = 64

    /// Reads one batch from the source; true when anything was read.
    private func readSource() -> Bool {
        // The batch may hold records received while (re)registering; processBatch() empties it.
        lastBatchDatagrams = 0
        var read = false
        if source == .plugin {
            read = readStandardInput()
        } else if let reader {
            do {
                let r = try reader.receive(into: receiveBuffer, timeout: .zero, maxDatagrams: 4096) { m in
                    self.batch.appendKernelRecord(type: m.type, payload: m.payload)
                }
                read = r.datagrams > 0 || r.gaps > 0
                lastBatchDatagrams = r.datagrams
                if r.gaps > 0 { Log.warning("audit socket overflowed: \(reader.gaps) overruns so far (records lost)") }
            } catch {
                Log.error("reading audit records: \(error)")
            }
        }
        processBatch()
        return read
    }

    /// Drains the connector first (exact inheritance), then assembles the batch.
    private func processBatch() {
        guard !batch.isEmpty else { return }
        tracker.drain()
        let assembler = self.assembler!
        // The stream clock releases held exits, so it moves only on this machine's
        // records (no node=) and never past the local clock by more than grace + 1 s
        // (a remote clock, or ours stepped back: a record from "the future" would
        // release every held exit at once).
        let limit = Clock.wallMilliseconds() + UInt64(configuration.graceMilliseconds) + 1000
        if streamMs > limit { streamMs = 0 }
        batch.forEach { line in
            switch RecordScanner.scan(line) {
            case .success(let h):
                let t = h.time.totalMilliseconds
                if t > streamMs, t <= limit, h.node.isEmpty, !h.type.isDaemonRecord { streamMs = t }
                assembler.push(line: line, header: h)
            case .failure(let e):
                Log.warning("unreadable record (\(e)): \(String(decoding: line.prefix(120), as: UTF8.self))")
            }
        }
        batch.removeAll()
        assembler.drain()
    }

    private func readStandardInput() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var any = false
        while true {
            let n = read(0, &chunk, chunk.count)
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 {
                stdinOpen = false
                stopping = true
                break
            }
            any = true
            stdinRemainder += chunk[..<n]
            if stdinRemainder.count > 1 << 20 { break }
        }
        var start = 0
        stdinRemainder.withUnsafeBytes { all in
            for i in 0..<all.count where all[i] == 0x0A {
                batch.appendLine(UnsafeRawBufferPointer(rebasing: all[start..<i]))
                start = i + 1
            }
        }
        stdinRemainder.removeFirst(start)
        if !stdinOpen, !stdinRemainder.isEmpty {
            stdinRemainder.withUnsafeBytes { batch.appendLine($0) }
            stdinRemainder.removeAll()
        }
        return any
    }

    // MARK: events

    private func handle(_ view: AuditEventView) {
        eventsSeen += 1
        let count = view.recordCount
        var syscallIndex = -1
        for i in 0..<count where view.header(i).type == .syscall {
            syscallIndex = i
            break
        }
        if syscallIndex >= 0 {
            let h = view.header(syscallIndex)
            var pid: Int32 = 0, ppid: Int32 = 0
            var tracking = false
            view.withRecordBytes(syscallIndex) { bytes in
                let body = UnsafeRawBufferPointer(rebasing: bytes[Int(h.bodyStart)..<Int(h.bodyEnd)])
                pid = Int32(truncatingIfNeeded: FieldScan.integer(" pid=", in: body) ?? 0)
                ppid = Int32(truncatingIfNeeded: FieldScan.integer(" ppid=", in: body) ?? 0)
                tracking = FieldScan.contains(trackingKeyBytes, in: body)
            }
            if pid > 0, registry.chainBytes(of: pid) == nil, registry.process(pid) == nil {
                tracker.discover(pid: pid, ppid: ppid)
            }
            if tracking {
                trackingEvents += 1
                return
            }
        }
        var event = view.makeEvent()
        if syscallIndex < 0, let first = event.records.first, (2900...2907).contains(first.type.rawValue) {
            if let own = HostLogForm.unwrapOwnRecord(first, ownPID: ownPID) {
                guard cameBack(own) else { return }
                event.records[0] = own
                write(event)
                return
            }
        }
        let annotated = EventAnnotator.annotate(event, registry: registry)
        if !ruleFilter.isEmpty, let s = event.first(.syscall), let pid = s.pid {
            if !ruleFilter.admits(key: s.key, chain: registry.chain(of: pid)) {
                eventsFiltered += 1
                return
            }
        }
        write(annotated.event)
    }

    private func write(_ event: AuditEvent) {
        do { try log.write(event) } catch {
            writeErrors += 1
            if writeErrors == 1 || writeErrors % 1000 == 0 { Log.error("host log: \(error) (\(writeErrors) write errors)") }
        }
    }

    private func flushLog() {
        do { try log.flush() } catch {
            writeErrors += 1
            if writeErrors == 1 || writeErrors % 1000 == 0 { Log.error("host log: \(error) (\(writeErrors) write errors)") }
        }
    }

    /// The kernel drops its audit daemon when records cannot be delivered for too
    /// long (kauditd retry queue overflow); records meanwhile went to printk and
    /// show up here as sequence gaps. Register again.
    private func reregister() {
        guard let reader, let session else { return }
        defer { processBatch() }  // records that came with the registration's answers
        reregistrations += 1
        Log.warning("the kernel no longer sends records to contidd (registered pid is not ours); registering again")
        do {
            try session.becomeAuditDaemon(reader: reader) { [unowned self] m in self.batch.appendKernelRecord(type: m.type, payload: m.payload) }
        } catch {
            Log.error("registering again as the audit daemon: \(error)")
        }
    }

    // MARK: records of contid's own

    /// Sends the registry's records through the kernel (its timestamp and serial;
    /// they come back in the stream and are written then), or writes them directly.
    private func submitPendingRecords(extra: [ContainerRecord] = []) {
        let records = registry.takeRecords() + extra
        for r in records {
            if submitThroughKernel {
                do {
                    try control.sendUserMessage(type: r.type, text: r.body)
                    // Kept until it comes back in the stream; written directly if it does not.
                    inFlight.append((r, Clock.monotonicMilliseconds()))
                    continue
                } catch {
                    submitFailures += 1
                    Log.warning("submitting \(r.type.name) through the kernel: \(error); writing it directly")
                }
            }
            writeDirectly(r)
        }
    }

    /// Records submitted through the kernel and not seen back yet, with when they were sent.
    private var inFlight: [(record: ContainerRecord, sentMs: UInt64)] = []
    private var recordsWrittenDirectly = 0
    private static let inFlightTimeoutMs: UInt64 = 500

    private func writeDirectly(_ r: ContainerRecord) {
        let wall = Clock.wallMilliseconds()
        ownSerial &+= 1
        let record = AuditRecord.make(type: r.type, time: AuditTime(seconds: wall / 1000, milliseconds: UInt16(wall % 1000)),
                                      serial: ownSerial, body: r.body)
        do { try log.write(record) } catch { writeErrors += 1 }
    }

    /// Records written directly because they were late (the newest 1024): when one
    /// comes back after all, it is not written twice.
    private var writtenLate: [ContainerRecord] = []

    /// An own record came back through the kernel: it is no longer in flight. False
    /// when it was written directly already.
    private func cameBack(_ record: AuditRecord) -> Bool {
        let body = record.body.drop { $0 == " " }
        if let i = inFlight.firstIndex(where: { $0.record.type == record.type && $0.record.body[...] == body }) {
            inFlight.remove(at: i)
            return true
        }
        if let i = writtenLate.firstIndex(where: { $0.type == record.type && $0.body[...] == body }) {
            writtenLate.remove(at: i)
            return false
        }
        return true
    }

    /// Writes directly the records that did not come back in time (all of them with `all`).
    private func writeOverdueRecords(all: Bool) {
        guard !inFlight.isEmpty else { return }
        let now = Clock.monotonicMilliseconds()
        var kept: [(record: ContainerRecord, sentMs: UInt64)] = []
        for entry in inFlight {
            if all || now >= entry.sentMs + Self.inFlightTimeoutMs {
                writeDirectly(entry.record)
                recordsWrittenDirectly += 1
                writtenLate.append(entry.record)
                if writtenLate.count > 1024 { writtenLate.removeFirst(writtenLate.count - 1024) }
            } else {
                kept.append(entry)
            }
        }
        if inFlight.count != kept.count, !all {
            Log.warning("\(inFlight.count - kept.count) records submitted through the kernel did not come back within \(Self.inFlightTimeoutMs) ms; written directly (\(recordsWrittenDirectly) so far)")
        }
        inFlight = kept
    }

    // MARK: registration socket

    /// A registration client: its replies not sent yet (the socket was full) and when
    /// it last made progress.
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

    private static let maxConnections = 64
    private static let idleMilliseconds: UInt64 = 5000
    private static let maxPendingReplyBytes = 8 << 20
    /// The listener is left out of poll until then after accept failed (EMFILE).
    private var listenerPausedUntil: UInt64 = 0
    private var connectionsRefused = 0
    private var connectionsClosedIdle = 0
    private var connectionsClosedFull = 0

    private func acceptConnections() {
        guard let listener else { return }
        while true {
            let c: UnixConnection
            do {
                guard let accepted = try listener.accept(timeout: .zero) else { return }
                c = accepted
            } catch {
                // Out of descriptors: poll would report the listener again at once.
                listenerPausedUntil = Clock.monotonicMilliseconds() + 1000
                Log.error("accepting a registration connection: \(error); not accepting for 1 s")
                return
            }
            guard connections.count < Self.maxConnections else {
                connectionsRefused += 1
                if connectionsRefused == 1 || connectionsRefused % 100 == 0 {
                    Log.warning("\(Self.maxConnections) registration connections open; refused one (\(connectionsRefused) so far)")
                }
                continue  // closed when `c` goes
            }
            // SO_PEERPIDFD is the kernel's pin of the process that connected.
            let peer = try? c.peer()
            connections[c.descriptor.rawValue] = Client(connection: c, peer: peer, now: Clock.monotonicMilliseconds())
        }
    }

    private func serveConnection(_ fd: Int32, revents: Int16) {
        guard let client = connections[fd] else { return }
        if !client.pending.isEmpty {
            sendPending(client, fd: fd)
            return
        }
        let message: [UInt8]?
        do {
            message = try client.connection.receive(maxLength: 4096, timeout: .zero)
        } catch {
            connections[fd] = nil
            return
        }
        guard let message else {
            connections[fd] = nil
            return
        }
        client.lastActivity = Clock.monotonicMilliseconds()
        var replies: [RegistrationReply]
        do {
            let request = try RegistrationRequest.decode(message)
            if let peer = client.peer {
                replies = answer(request, peer: peer)
            } else {
                replies = [.error(errno: "ESRCH", message: "the requesting process could not be identified")]
            }
        } catch {
            replies = [.error(errno: "EINVAL", message: error.reason)]
        }
        for r in replies {
            let bytes = r.encoded()
            client.pending.append(bytes)
            client.pendingBytes += bytes.count
        }
        sendPending(client, fd: fd)
    }

    /// Sends queued replies without blocking; the rest waits for POLLOUT. A client
    /// that lets more than 8 MiB of replies pile up is closed.
    private func sendPending(_ client: Client, fd: Int32) {
        var sent = 0
        while sent < client.pending.count {
            do {
                try client.connection.send(client.pending[sent], timeout: .zero)
            } catch LinuxAuditError.syscall(_, let e) where e == .timedOut {
                break
            } catch {
                connections[fd] = nil
                return
            }
            client.pendingBytes -= client.pending[sent].count
            sent += 1
        }
        if sent > 0 {
            client.pending.removeFirst(sent)
            client.lastActivity = Clock.monotonicMilliseconds()
        }
        if client.pendingBytes > Self.maxPendingReplyBytes {
            connectionsClosedFull += 1
            Log.warning("a registration client does not read its replies; closed (\(connectionsClosedFull) so far)")
            connections[fd] = nil
        }
    }

    /// Closes connections that made no progress for 5 s (a request not sent, replies not read).
    private func closeIdleConnections(now: UInt64) {
        for (fd, client) in connections where now > client.lastActivity + Self.idleMilliseconds {
            connectionsClosedIdle += 1
            connections[fd] = nil
        }
    }

    private func answer(_ request: RegistrationRequest, peer: PeerIdentity) -> [RegistrationReply] {
        if case .status = request { return [.ok(statusLine())] }
        tracker.drain()
        let outcome = registrar.handle(request, peer: peer)
        if registry.pendingRecordCount > 0 || !outcome.records.isEmpty {
            submitPendingRecords(extra: outcome.records)
        }
        if outcome.changed { saveSnapshot() }
        return outcome.replies
    }

    // MARK: state

    private func loadRegistry() -> ContainerRegistry {
        guard let bytes = AtomicFile.read(snapshotPath) else { return ContainerRegistry() }
        do {
            let r = try ContainerRegistry.restore(from: bytes) { key in ProcStat.startTime(pid: key.pid) == key.start }
            Log.info("restored \(r.containerCount) containers, \(r.processCount) live processes from \(snapshotPath) (\(r.diedUnseen) exited meanwhile)")
            return r
        } catch {
            Log.error("\(error); starting with an empty registry")
            return ContainerRegistry()
        }
    }

    private func saveSnapshot() {
        do { try AtomicFile.write(registry.snapshot(), to: snapshotPath) } catch {
            Log.error("saving the registry: \(error)")
        }
    }

    // MARK: signals, status, stop

    private func handleSignals() {
        for s in SignalPipe.take(signalFD) {
            switch s {
            case SIGTERM, SIGINT:
                stopping = true
            case SIGUSR1:
                Log.info(statusLine())
            case SIGHUP:
                // Reopen the log (after an external rotation): the new file is opened before
                // the old one is closed; on failure the old one stays and later flushes retry.
                do {
                    try log.reopen()
                    Log.info("SIGHUP: reopened \(log.path)")
                } catch { Log.error("SIGHUP: \(error); still writing the file open before, retrying") }
            default: break
            }
        }
    }

    /// `processes=N containers=N events=N written=N ... kernel_lost=N` (lost counts are since start).
    func statusLine() -> String {
        let c = assembler.counters
        return "processes=\(registry.processCount) containers=\(registry.containerCount) records=\(c.records) events=\(eventsSeen)"
            + " tracking=\(trackingEvents) written=\(log.eventsWritten) filtered=\(eventsFiltered)"
            + " kernel_lost=\(kernelLost &- kernelLostAtStart) sequence_gaps=\(c.lost) socket_overruns=\(reader?.gaps ?? 0)"
            + " connector_overruns=\(tracker.connectorGaps) rescans=\(tracker.rescans) discovered=\(tracker.discoveredFromRecords)"
            + " pending_exits=\(tracker.pendingExitCount) submit_failures=\(submitFailures) write_errors=\(writeErrors)"
            + " reregistrations=\(reregistrations) tracking_rule_moves=\(session?.trackingRuleMoves ?? 0)"
            + " own_rules_restored=\(session?.ownRulesRestored ?? 0) records_written_directly=\(recordsWrittenDirectly)"
            + " connections_refused=\(connectionsRefused) connections_closed_idle=\(connectionsClosedIdle)"
            + " connections_closed_full=\(connectionsClosedFull) log_records_dropped=\(log.recordsDropped)"
    }

    private func reportLosses(always: Bool) {
        let c = assembler.counters
        let line = "losses: kernel_lost=\(kernelLost &- kernelLostAtStart) sequence_gaps=\(c.lost) socket_overruns=\(reader?.gaps ?? 0) connector_overruns=\(tracker.connectorGaps)"
        if always || line != lastReport, always || kernelLost != kernelLostAtStart || c.lost > 0 || (reader?.gaps ?? 0) > 0 || tracker.connectorGaps > 0 {
            Log.info(line)
        }
        lastReport = line
    }

    private func shutdown() {
        Log.info("stopping")
        listener = nil
        connections.removeAll()
        session?.restore(reader: reader) {
            // The last records (the rules' CONFIG_CHANGE among them) before the registration ends.
            let deadline = Clock.monotonicMilliseconds() + 300
            while Clock.monotonicMilliseconds() < deadline {
                if !readSource() { break }
            }
            tracker.drain()
            assembler.finish()
            // The last records (drops among them) go straight to the log: the kernel would
            // send them back after the registration ended.
            submitThroughKernel = false
            writeOverdueRecords(all: true)
            submitPendingRecords()
        }
        if let s = try? control.status() { kernelLost = s.lost }
        saveSnapshot()
        reportLosses(always: true)
        Log.info(statusLine())
        log.close()
        reader?.close()
        control.close()
    }

    /// STATE_DIR/contidd.lock, held (flock) for contidd's lifetime; it holds the pid.
    private var lockFD: Int32 = -1

    private func takeLock() throws {
        let path = configuration.stateDirectory + "/contidd.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw DaemonError("open \(path): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let e = errno
            var holder = [UInt8](repeating: 0, count: 32)
            let n = pread(fd, &holder, holder.count, 0)
            close(fd)
            let pid = n > 0 ? String(decoding: holder[..<n], as: UTF8.self).split(separator: "\n").first.map(String.init) ?? "?" : "?"
            if e == EWOULDBLOCK {
                throw DaemonError("another contidd (pid \(pid)) is running with state directory \(configuration.stateDirectory); stop it first")
            }
            throw DaemonError("flock \(path): \(String(cString: strerror(e)))")
        }
        let text = Array("\(ownPID)\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pwrite(fd, text, text.count, 0)
        lockFD = fd
    }

    private func makeDirectory(_ path: String, mode: mode_t) throws {
        var partial = ""
        for part in path.split(separator: "/") {
            partial += "/" + part
            if mkdir(partial, partial == path ? mode : 0o755) != 0 && errno != EEXIST {
                throw DaemonError("mkdir \(partial): \(String(cString: strerror(errno)))")
            }
        }
        if path == configuration.runDirectory { chmod(path, mode) }
    }
}
