import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit

// contidd's composition root: it builds the parts and wires them into one event
// loop; the parts hold the logic.
//
//   AuditStreamSource --records--> LiveEventPath (connector drained first,
//        assembled, attributed, filtered) --> HostLogWriter
//   ProcessTracker (proc connector, /proc) --> ContainerRegistry
//   RegistrationServer --requests--> Registrar --> registry, OwnRecordLedger
//        --user messages--> kernel --> back in the stream --> host log
//   KernelAuditSession: what contidd changed in the kernel, and its undoing
//   StateDirectory: lock, snapshot
//
// One thread; the registry is single-threaded and nothing takes a lock.

public final class Daemon {
    public let configuration: DaemonConfiguration
    private let clock: TimeSource
    private let ownPID = getpid()

    private var control: AuditNetlink!
    private var source: AuditStreamSource!
    private var session: KernelAuditSession?
    private var state: StateDirectory!
    private var registry: ContainerRegistry!
    private var tracker: ProcessTracker!
    private var namespaceWatch: NamespaceWatch!
    private var registrar: Registrar!
    private var ledger: OwnRecordLedger!
    private var log: HostLogWriter!
    /// The host log's sidecar index (`audit.log.cidx`), kept as it writes.
    private var logIndex: LogIndexWriter?
    private var events: LiveEventPath!
    private var router: Router!
    /// Drops of every destination but the host log, reported as CONTAINER_LOST.
    private let losses = LossBook()
    private var containerLogs: ContainerLogs?
    private var server: RegistrationServer?
    private var loop: EventLoop!
    private var signalFD: Int32 = -1
    private var stopping = false

    private var kernelLostAtStart: UInt32 = 0
    private var kernelLost: UInt32 = 0
    private var reregistrations = 0
    private var lastReport = ""

    private var socketPath: String { configuration.runDirectory + "/contid.sock" }

    public init(configuration: DaemonConfiguration, clock: TimeSource = SystemTimeSource.shared) {
        self.configuration = configuration
        self.clock = clock
    }

    // MARK: run

    /// Loads `rules` (parsed rules files) into the kernel and runs until SIGTERM/SIGINT
    /// (or, as a plugin, end of input). Returns the exit status.
    public func run(rules: [RuleLine]) throws -> Int32 {
        signalFD = try SignalPipe.install()
        state = StateDirectory(path: configuration.stateDirectory)
        try state.claim()
        try FileSystem.makeDirectories(configuration.logDirectory, mode: 0o700)
        try FileSystem.makeDirectories(configuration.runDirectory, mode: 0o755, enforceMode: true)

        control = try AuditNetlink(mode: .unicast, receiveBufferSize: 1 << 20)
        let status = try control.status()
        let kind = resolveSource(configuration.source, status: status)
        Log.info("pid \(ownPID), source \(kind.rawValue), log \(configuration.logDirectory)/audit.log (\(configuration.logFormat.rawValue)), tracking rules \(kind == .netlink ? configuration.trackingRules.rawValue : "none")")

        log = try HostLogWriter(directory: configuration.logDirectory, format: configuration.logFormat,
                                maxFileBytes: configuration.maxLogFileMB << 20, numLogs: configuration.numLogs,
                                flush: configuration.flush, frequency: configuration.frequency)
        log.ownTypeForm = configuration.recordTypeNames
        log.nodePrefix = nodePrefix
        logIndex = LogIndexWriter(logPath: log.path, existingSize: log.currentSize)
        log.observer = logIndex
        registry = state.loadRegistry { key in ProcFS().startTime(pid: key.pid) == key.start }
        tracker = ProcessTracker(registry: registry, events: try ProcConnectorEvents(), processes: ProcFS(), clock: clock,
                                 graceMilliseconds: configuration.graceMilliseconds)
        namespaceWatch = NamespaceWatch(registry: registry)
        tracker.namespaceWatch = namespaceWatch
        tracker.scan()
        tracker.drain()
        registrar = Registrar(registry: registry, tracker: tracker)
        ledger = OwnRecordLedger(clock: clock, submitter: control, submitThroughKernel: true) { [unowned self] record in
            self.events.write(record)
        }
        // Every new log file starts with the labels of the containers alive then (SPEC §6).
        log.newFileRecords = { [unowned self] in registry.containerInfoRecords().map { ledger.stamped($0) } }
        source = try AuditStreamSource(kind: kind)
        router = try makeRouter()
        events = LiveEventPath(registry: registry, tracker: tracker, ledger: ledger, log: log, router: router, clock: clock,
                               graceMilliseconds: configuration.graceMilliseconds, ownPID: ownPID)

        let session = try KernelAuditSession(control: control, stateDirectory: configuration.stateDirectory)
        self.session = session
        // From the first change to the kernel to the loop, any error puts the kernel back.
        do {
            // A silent proc connector would leave every process untracked.
            try tracker.verifySubscription()
            try start(session, rules: rules)
            kernelLostAtStart = (try? control.status().lost) ?? 0
            kernelLost = kernelLostAtStart
            ledger.submitThroughKernel = kind == .netlink || ((try? control.status().enabled) ?? 0) == 1
            let listener = try UnixListener(path: socketPath, mode: mode_t(configuration.socketMode))
            server = RegistrationServer(listener: listener, clock: clock,
                                        refuseMalformed: { [unowned self] in registrar.refuseMalformed($0) },
                                        answer: { [unowned self] request, peer, target in self.answer(request, peer: peer, target: target) })
            submitPendingRecords()
            state.save(registry)
        } catch {
            session.restore(reader: source.reader, beforeUnregister: {})
            throw error
        }
        Log.info("tracking \(registry.processCount) processes, \(registry.containerCount) containers; registration socket \(socketPath)")

        loop = makeLoop()
        loop.run { stopping }
        shutdown()
        return 0
    }

    /// `node=NAME ` for every record contidd writes or sends (`node_name`), or nothing.
    private lazy var nodePrefix: [UInt8] = {
        switch configuration.nodeName {
        case .none: return []
        case .fixed(let name): return Array("node=\(name) ".utf8)
        case .hostname:
            let name = Self.hostName()
            return name.isEmpty ? [] : Array("node=\(name) ".utf8)
        }
    }()

    /// This machine's host name (`node_name = hostname`, ClickHouse rows' host).
    public static func hostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count) == 0 else { return "" }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    // MARK: routing

    /// The host sinks (host log, JSON log), the container logs and the named destinations.
    private func makeRouter() throws -> Router {
        let labelled = registry!
        var host: [EventSink] = [log]
        if let path = configuration.jsonLog {
            host.append(try JSONLogSink(path: path, labels: { id in labelled.labels(of: id) }))
        }
        if configuration.containerLogs {
            var s = ContainerLogs.Settings()
            s.format = configuration.logFormat
            s.maxFileBytes = configuration.maxLogFileMB << 20
            s.numLogs = configuration.numLogs
            s.flush = configuration.flush
            s.frequency = configuration.frequency
            s.nodePrefix = nodePrefix
            s.ownTypeForm = configuration.recordTypeNames
            containerLogs = ContainerLogs(directory: configuration.logDirectory + "/containers", settings: s, losses: losses) { id in
                labelled.container(id)?.creation
            }
        }
        let named = try configuration.destinations.map { try makeDestination($0) }
        return Router(host: host, containerLogs: containerLogs, readers: nil, named: named, losses: losses)
    }

    /// One `[destination NAME]` of the config.
    private func makeDestination(_ d: DestinationConfiguration) throws -> RouteDestination {
        let labelled = registry!
        switch d.type {
        case .json:
            return try JSONLinesDestination(name: d.name, path: d.path!, losses: losses, labels: { id in labelled.labels(of: id) })
        case .clickhouse:
            let node = String(decoding: nodePrefix.dropFirst(5).dropLast(), as: UTF8.self)
            let ch = try ClickHouseDestination(configuration: d, spoolDirectory: configuration.stateDirectory + "/spool/" + d.name,
                                               nodeName: node.isEmpty ? Self.hostName() : node, losses: losses,
                                               labels: { id in labelled.labels(of: id) })
            ch.start()
            return ch
        case .remote, nil:
            throw DaemonError.destinationUnavailable(name: d.name, reason: "type \(d.type?.rawValue ?? "?") is not built into this contidd yet")
        }
    }

    /// CONTAINER_LOST records for the drops of the last second (at most one per
    /// destination and container a second), through the kernel like CONTAINER_OP.
    private func reportDrops(all: Bool = false) {
        let records = losses.takeReports(nowMilliseconds: clock.monotonicMilliseconds, all: all)
        if !records.isEmpty { ledger.submit(records) }
    }

    private func resolveSource(_ wanted: AuditSource, status: AuditStatus) -> AuditSource {
        guard wanted == .auto else { return wanted }
        return status.pid != 0 && ChildProcess.exists(pid_t(status.pid)) ? .multicast : .netlink
    }

    private func start(_ session: KernelAuditSession, rules: [RuleLine]) throws {
        if source.kind == .netlink, let reader = source.reader {
            do {
                try session.becomeAuditDaemon(reader: reader) { [unowned self] m in self.source.appendKernelRecord(m) }
                // Records that arrived while registering are in the batch: processed, not lost.
                events.process(source.batch)
            } catch LinuxAuditError.rejected(_, let e) where e == .fileExists {
                throw DaemonError.anotherAuditDaemon(pid: (try? control.status().pid) ?? 0)
            }
        }
        var backlog = configuration.backlogLimit
        // Process facts come from the proc connector; beside auditd (multicast, plugin)
        // contidd adds no rules of its own at all: they would land in auditd's log.
        let tracking = source.kind == .netlink ? configuration.trackingRules : .none
        events.ruleFilter = try session.loadRules(rules, backlog: &backlog, tracking: tracking)
        if source.kind == .netlink { try session.setBacklogLimit(backlog) }
    }

    // MARK: the loop

    /// Under this many datagrams a read counts as caught up: reading then pauses for
    /// batch_ms, so that records trickling in one by one (kauditd sends one datagram per
    /// record) are taken one wakeup per batch. A burst is read on at once.
    private static let smallBatch = 64
    /// How often namespaces that lost their last known user are checked (NS_DESTROY
    /// within this of the namespace's end; the check costs one open per candidate).
    static let namespaceCheckMilliseconds: UInt64 = 250

    private func makeLoop() -> EventLoop {
        let loop = EventLoop(clock: clock)
        loop.add(descriptor: { [unowned self] in signalFD }) { [unowned self] in
            handleSignals()
            return false
        }
        loop.add(rests: { true }, descriptor: { [unowned self] in source.pollDescriptor }) { [unowned self, unowned loop] in
            let read = readSource()
            if read, source.lastDatagrams < Self.smallBatch { loop.quiet(forMilliseconds: configuration.batchMilliseconds) }
            return read
        }
        // The connector rests with the stream, except while a container has a pid namespace
        // of its own: then a fork is read at once, while the child still lives to be read
        // from /proc (its pid namespace: joins).
        loop.add(rests: { [unowned self] in !registry.hasOwnPIDNamespaces },
                 descriptor: { [unowned self] in tracker.descriptor }) { [unowned self] in
            tracker.drain()
            return false
        }
        loop.add(register: { [unowned self] set in server?.register(in: &set) },
                 service: { [unowned self] set in
                     server?.serviceReady(set)
                     return false
                 })
        var lastSnapshot = clock.monotonicMilliseconds
        var lastReportTime = lastSnapshot
        var lastStatus = lastSnapshot
        var ruleChecks = 0
        var snapshotForks = 0
        var lastNamespaceCheck = lastSnapshot
        loop.housekeeping = { [unowned self] idle in
            let now = clock.monotonicMilliseconds
            tracker.drain()
            tracker.applyDueExits(streamMs: events.streamMs, now: clock.wallMilliseconds, streamIdle: idle)
            if idle { events.advanceIdleClock() }
            ledger.writeOverdue(all: false)
            reportDrops()
            server?.closeIdleConnections()
            // Namespaces without a known user: NS_DESTROY once their handle is stale.
            if now - lastNamespaceCheck >= Self.namespaceCheckMilliseconds {
                lastNamespaceCheck = now
                namespaceWatch.check()
            }
            if registry.pendingRecordCount > 0 {
                submitPendingRecords()
                state.save(registry)
                lastSnapshot = now
            }
            if configuration.snapshotInterval > 0, now - lastSnapshot >= UInt64(configuration.snapshotInterval) * 1000,
               tracker.forks + tracker.exits != snapshotForks {
                snapshotForks = tracker.forks + tracker.exits
                state.save(registry)
                lastSnapshot = now
            }
            if now - lastStatus >= 1000 {
                lastStatus = now
                // Refusals over the per-uid rate: the seconds that ended are summarized now.
                let due = registrar.dueSummaries(now: clock.wallMilliseconds)
                if !due.isEmpty { submitPendingRecords(extra: due) }
                if let s = try? control.status() {
                    kernelLost = s.lost
                    if source.kind == .netlink, s.pid != UInt32(bitPattern: ownPID) { reregister() }
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
        loop.afterRound = { [unowned self] in events.flush() }
        return loop
    }

    /// Reads one batch from the source and processes it; true when anything was read.
    private func readSource() -> Bool {
        let read = source.read()
        events.process(source.batch)
        if !source.isOpen { stopping = true }
        return read
    }

    /// The kernel drops its audit daemon when records cannot be delivered for too
    /// long (kauditd retry queue overflow); records meanwhile went to printk and
    /// show up here as sequence gaps. Register again.
    private func reregister() {
        guard let reader = source.reader, let session else { return }
        defer { events.process(source.batch) }  // records that came with the registration's answers
        reregistrations += 1
        Log.warning("the kernel no longer sends records to contidd (registered pid is not ours); registering again")
        do {
            try session.becomeAuditDaemon(reader: reader) { [unowned self] m in self.source.appendKernelRecord(m) }
        } catch {
            Log.error("registering again as the audit daemon: \(error)")
        }
    }

    // MARK: registration

    private func submitPendingRecords(extra: [ContainerRecord] = []) {
        ledger.submit(registry.takeRecords() + extra)
    }

    private func answer(_ request: RegistrationRequest, peer: PeerIdentity, target: PinnedProcess?) -> [RegistrationReply] {
        if case .status = request { return [.ok(statusLine())] }
        tracker.drain()
        let outcome = registrar.handle(request, peer: peer, target: target, now: clock.wallMilliseconds)
        if registry.pendingRecordCount > 0 || !outcome.records.isEmpty {
            submitPendingRecords(extra: outcome.records)
        }
        if outcome.changed { state.save(registry) }
        return outcome.replies
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
        let c = events.assemblyCounters
        let e = events.counters
        let s = server?.counters ?? RegistrationServer.Counters()
        return "processes=\(registry.processCount) containers=\(registry.containerCount) records=\(c.records) events=\(e.eventsSeen)"
            + " tracking=\(e.trackingEvents) written=\(log.eventsWritten) filtered=\(e.eventsFiltered)"
            + " kernel_lost=\(kernelLost &- kernelLostAtStart) sequence_gaps=\(c.lost) socket_overruns=\(source.socketOverruns)"
            + " connector_overruns=\(tracker.connectorGaps) rescans=\(tracker.rescans) discovered=\(tracker.discoveredFromRecords)"
            + " pending_exits=\(tracker.pendingExitCount) submit_failures=\(ledger.counters.submitFailures) write_errors=\(e.writeErrors)"
            + " reregistrations=\(reregistrations) tracking_rule_moves=\(session?.trackingRuleMoves ?? 0)"
            + " own_rules_restored=\(session?.ownRulesRestored ?? 0) records_written_directly=\(ledger.counters.writtenDirectly)"
            + " connections_refused=\(s.refused) connections_closed_idle=\(s.closedIdle)"
            + " connections_closed_full=\(s.closedFull) refusals_suppressed=\(registrar.refusalsSuppressed)"
            + " malformed_requests=\(registrar.malformedRequests) log_records_dropped=\(log.recordsDropped)"
            + " joins=\(tracker.joins) pid_namespaces_unread=\(tracker.pidNamespacesUnread)"
            + " namespace_syscalls=\(tracker.namespaceSyscalls) namespaces_unread=\(tracker.namespacesUnread)"
            + " namespaces_known=\(namespaceWatch.knownCount) namespace_candidates=\(namespaceWatch.candidateCount)"
            + " namespaces_destroyed=\(namespaceWatch.destroyed) namespaces_unconfirmed=\(namespaceWatch.unconfirmed)"
            + " namespace_probes=\(namespaceWatch.probes)"
            + " routed=\(router.counters.events) off_host=\(router.counters.offHost) routed_nowhere=\(router.counters.nowhere)"
            + " destination_drops=\(losses.total) container_logs_open=\(containerLogs?.openCount ?? 0)"
    }

    private func reportLosses(always: Bool) {
        let c = events.assemblyCounters
        let overruns = source.socketOverruns
        let line = "losses: kernel_lost=\(kernelLost &- kernelLostAtStart) sequence_gaps=\(c.lost) socket_overruns=\(overruns) connector_overruns=\(tracker.connectorGaps)"
        if always || line != lastReport, always || kernelLost != kernelLostAtStart || c.lost > 0 || overruns > 0 || tracker.connectorGaps > 0 {
            Log.info(line)
        }
        lastReport = line
    }

    private func shutdown() {
        Log.info("stopping")
        server?.closeAll()
        server = nil
        session?.restore(reader: source.reader) {
            // The last records (the rules' CONFIG_CHANGE among them) before the registration ends.
            let deadline = clock.monotonicMilliseconds + 300
            while clock.monotonicMilliseconds < deadline {
                if !readSource() { break }
            }
            tracker.drain()
            events.finish()
            // The last records (drops among them) go straight to the log: the kernel would
            // send them back after the registration ended.
            ledger.submitThroughKernel = false
            ledger.writeOverdue(all: true)
            submitPendingRecords()
            reportDrops(all: true)
        }
        if let s = try? control.status() { kernelLost = s.lost }
        state.save(registry)
        reportLosses(always: true)
        Log.info(statusLine())
        events.flush()
        router.close()
        logIndex?.save()
        source.close()
        control.close()
    }
}
