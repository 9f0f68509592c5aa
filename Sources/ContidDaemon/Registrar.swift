import AuditCodec
import AuditPipeline
import ContainerEngine
import Glibc
import LinuxAudit

// Registration requests from the socket (SPEC §4). The writer's identity comes
// from the kernel only: SO_PEERCRED and SO_PEERPIDFD of the connection, and
// /proc read through pidfds that are checked again after each read. The target
// is pinned with pidfd_open during the checks.

final class Registrar {
    let registry: ContainerRegistry
    let tracker: ProcessTracker
    private let proc = ProcFS()
    /// Refusals recorded one by one up to a per-uid rate, the rest summarized (SPEC §6).
    private var refusals: RefusalRateLimit
    /// Requests answered with EINVAL and not recorded: undecodable messages
    /// (`refuseMalformed`) and `set` with an ID that does not parse.
    private(set) var malformedRequests = 0
    /// Refused attempts whose record was not written (counted in set-suppressed records).
    var refusalsSuppressed: Int { refusals.suppressed }

    /// `refusalsPerSecond`: refused attempts recorded per requesting uid and second.
    init(registry: ContainerRegistry, tracker: ProcessTracker, refusalsPerSecond: Int = 10) {
        self.registry = registry
        self.tracker = tracker
        refusals = RefusalRateLimit(perSecond: refusalsPerSecond)
    }

    /// What a request produced: the replies, and whether the registry changed.
    struct Outcome {
        var replies: [RegistrationReply]
        var changed = false
        /// Extra records contidd writes for a success (NS_INFO).
        var records: [ContainerRecord] = []
    }

    /// Answers one request. `now` (wall clock, ms) places refusals in their second.
    /// The outcome's records are all there is to submit, in order: the summaries of
    /// seconds that ended, then every record the registry held or produced (taken
    /// here, the refusals over the rate left out).
    /// `target`: the pidfd the request came with, which names its target (else the
    /// request's pid, in contidd's pid namespace, is pinned now).
    func handle(_ request: RegistrationRequest, peer: PeerIdentity, target: PinnedProcess? = nil, now: UInt64) -> Outcome {
        let due = refusals.summaries(now: now)
        let pending = registry.takeRecords()
        var outcome = answer(request, peer: peer, target: target, now: now)
        outcome.records = due + pending + outcome.records + registry.takeRecords()
        return outcome
    }

    /// The set-suppressed summaries of seconds that ended before `now`: the daemon's
    /// loop submits them about once a second, so the last second of a burst is
    /// summarized without waiting for another request.
    func dueSummaries(now: UInt64) -> [ContainerRecord] {
        refusals.summaries(now: now)
    }

    /// The reply to a message that does not decode: EINVAL, counted, not recorded.
    func refuseMalformed(_ error: RegistrationProtocolError) -> RegistrationReply {
        malformedRequests += 1
        return .error(errno: error.errno, message: error.reason)
    }

    private func answer(_ request: RegistrationRequest, peer: PeerIdentity, target: PinnedProcess?, now: UInt64) -> Outcome {
        switch request {
        case let .set(pid, id, forParent, new, labels):
            return set(pid: target?.pid ?? pid, idText: id, forParent: forParent, new: new, labels: labels, peer: peer,
                       pinned: target, now: now)
        case let .capContID(pid, value, forParent):
            return capContID(pid: target?.pid ?? pid, value: value, forParent: forParent, peer: peer, pinned: target, now: now)
        case let .get(requested):
            if let refusal = readRefusal(peer) { return refusal }
            let pid = target?.pid ?? requested
            guard let state = registry.process(pid), proc.startTime(pid: pid) == state.process.start else {
                if proc.startTime(pid: pid) == nil { return Outcome(replies: [.error(errno: "ESRCH", message: "no process \(pid)")]) }
                return Outcome(replies: [.ok("-1")])
            }
            // A pidfd names one process: had it exited meanwhile, the answer would be about another.
            if let target, (try? target.isAlive) != true {
                return Outcome(replies: [.error(errno: "ESRCH", message: "process \(pid) exited during the request")])
            }
            return Outcome(replies: [.ok(state.chain.description)])
        case .ps:
            if let refusal = readRefusal(peer) { return refusal }
            let rows = registry.allProcesses().map { s in
                ProcessRow(pid: s.process.pid, ppid: s.parent, chain: s.chain.description, capContID: s.capContID,
                           comm: comm(s.process.pid))
            }
            let infos = registry.allContainers().filter { !$0.labels.isEmpty }
                .map { RegistrationReply.info(id: $0.id.description, labels: $0.labels) }
            return Outcome(replies: infos + rows.map { .row($0) } + [.ok("\(rows.count)")])
        case .status:
            return Outcome(replies: [])  // answered by the daemon, which has the counters
        }
    }

    private func readRefusal(_ peer: PeerIdentity) -> Outcome? {
        if mayRead(peer) { return nil }
        return Outcome(replies: [.error(errno: "EPERM", message: "process \(peer.process.pid) may not read container IDs: it lacks CAP_AUDIT_CONTROL and capcontid")])
    }

    // MARK: writer

    /// Set by `writer(...)` when the requesting `contid` lacks the privileges its parent has.
    private var unprivilegedRequester: Int32?

    /// The writer as the kernel says, or the errno to refuse with.
    private func writer(forParent: Bool, peer: PeerIdentity) -> Result<(Writer, [PinnedProcess]), ContainerFailure> {
        unprivilegedRequester = nil
        do {
            var pins = [peer.process]
            var writerPin = peer.process
            if forParent {
                let parent = try peer.process.parentPID(source: proc)
                let pin = try PinnedProcess(pid: parent)
                // Pinned after reading the pid: check that it is still the peer's parent
                // and alive, so the pin is that parent and not a reuse of its pid.
                guard try peer.process.isChild(of: parent, source: proc), try pin.isAlive else {
                    return .failure(ContainerFailure(.ESRCH, "the requester's parent \(parent) exited during the request"))
                }
                writerPin = pin
                pins.append(pin)
            }
            var privileged = true
            var writerPrivileged = true
            for pin in pins {
                let caps = try pin.effectiveCapabilities(source: proc)
                let userNS = try pin.userNamespace(source: proc)
                if caps & (1 << UInt64(ProcessStatus.capAuditControl)) == 0 || userNS != NamespaceKind.user.initialInode {
                    privileged = false
                    if pin.pid == writerPin.pid { writerPrivileged = false }
                }
            }
            if !privileged, writerPrivileged { unprivilegedRequester = peer.process.pid }
            let refusal = try requesterRefusal(peer: peer, forParent: forParent, writerPin: writerPin)
            let pid = writerPin.pid
            let start = try writerPin.startTime(source: proc)
            let status = try writerPin.verified { try proc.status(pid: $0) }
            let auid = (try? writerPin.verified { try proc.loginUID(pid: $0) }) ?? UInt32.max
            let ses = (try? writerPin.verified { try proc.sessionID(pid: $0) }) ?? UInt32.max
            let exe = (try? writerPin.verified { try proc.executable(pid: $0) }) ?? "?"
            var writer = Writer(process: ProcessKey(pid: pid, start: start), hasAuditControl: privileged,
                                uid: status.realUID, auid: auid, ses: ses, comm: status.name, exe: exe,
                                excludingChild: forParent ? peer.process.pid : nil)
            writer.requesterRefusal = refusal
            return .success((writer, pins))
        } catch {
            return .failure(ContainerFailure(.ESRCH, "the requester vanished during the request (\(error))"))
        }
    }

    /// Why the peer may not make this request although the writer might, or nil:
    /// - its credentials changed since it connected (SO_PEERCRED is taken at connect():
    ///   a client that execs a set-id program after sending must not borrow its rights);
    /// - it acts for a parent that holds only capcontid (which is not inherited) while
    ///   the peer itself holds neither CAP_AUDIT_CONTROL nor capcontid and sits in
    ///   another container than that parent: a container the parent created must not
    ///   use the parent's delegation. A helper the parent ran (same container) may.
    private func requesterRefusal(peer: PeerIdentity, forParent: Bool, writerPin: PinnedProcess) throws -> String? {
        let status = try peer.process.verified { try proc.status(pid: $0) }
        let connected = peer.credentials.uid
        if status.realUID != connected || status.effectiveUID != connected {
            return "process \(peer.process.pid) changed its credentials since it connected (uid \(connected) then, real \(status.realUID) and effective \(status.effectiveUID) now); a request cannot borrow a set-id program's rights"
        }
        guard forParent else { return nil }
        let peerCaps = try peer.process.effectiveCapabilities(source: proc)
        let peerNS = try peer.process.userNamespace(source: proc)
        let peerPrivileged = peerCaps & (1 << UInt64(ProcessStatus.capAuditControl)) != 0 && peerNS == NamespaceKind.user.initialInode
        if peerPrivileged { return nil }
        let peerKey = ProcessKey(pid: peer.process.pid, start: try peer.process.startTime(source: proc))
        tracker.ensureTracked(peerKey)
        if registry.process(peer.process.pid)?.capContID == true { return nil }
        let peerChain = registry.chain(of: peer.process.pid), writerChain = registry.chain(of: writerPin.pid)
        if peerChain != writerChain {
            return "process \(peer.process.pid) acts for its parent \(writerPin.pid) from another container (\(peerChain), the parent's \(writerChain)) and holds neither CAP_AUDIT_CONTROL nor capcontid"
        }
        return nil
    }

    /// Whether the peer may read container IDs (`get`, `ps`): like a read of
    /// /proc/PID/audit_containerid, CAP_AUDIT_CONTROL in the initial user namespace
    /// or capcontid (its own, or its parent's when it runs in its parent's container).
    private func mayRead(_ peer: PeerIdentity) -> Bool {
        guard let caps = try? peer.process.effectiveCapabilities(source: proc),
              let ns = try? peer.process.userNamespace(source: proc) else { return false }
        if caps & (1 << UInt64(ProcessStatus.capAuditControl)) != 0 && ns == NamespaceKind.user.initialInode { return true }
        let pid = peer.process.pid
        if let start = try? peer.process.startTime(source: proc) { tracker.ensureTracked(ProcessKey(pid: pid, start: start)) }
        if registry.process(pid)?.capContID == true { return true }
        guard let parent = try? peer.process.parentPID(source: proc), registry.process(parent)?.capContID == true else { return false }
        return registry.chain(of: pid) == registry.chain(of: parent)
    }

    /// The target as it is now (0 start time when there is no such process: the
    /// engine refuses it with ESRCH and records the attempt). `pinned`: the pidfd
    /// the client sent, which is the target (no pid to reuse).
    private func pinTarget(_ pid: Int32, pinned: PinnedProcess?) -> (ProcessKey, PinnedProcess?) {
        guard let pin = pinned ?? (try? PinnedProcess(pid: pid)), let start = try? pin.startTime(source: proc) else {
            return (ProcessKey(pid: pid, start: 0), nil)
        }
        return (ProcessKey(pid: pid, start: start), pin)
    }

    /// The writer and the pinned target of a request, both tracked; or the reply refusing it.
    private enum Parties {
        case refused(Outcome)
        case found(writer: Writer, target: ProcessKey, pin: PinnedProcess?)
    }

    private func parties(pid: Int32, forParent: Bool, peer: PeerIdentity, pinned: PinnedProcess?) -> Parties {
        switch self.writer(forParent: forParent, peer: peer) {
        case .failure(let f):
            return .refused(Outcome(replies: [.error(errno: f.errno.name, message: f.reason)]))
        case .success(let (writer, _)):
            let (target, pin) = pinTarget(pid, pinned: pinned)
            tracker.ensureTracked(writer.process)
            if pin != nil { tracker.ensureTracked(target) }
            return .found(writer: writer, target: target, pin: pin)
        }
    }

    private func set(pid: Int32, idText: String, forParent: Bool, new: Bool, labels: ContainerLabels, peer: PeerIdentity,
                     pinned: PinnedProcess?, now: UInt64) -> Outcome {
        // An ID that does not parse is a malformed request, refused before any check
        // and not recorded, as the kernel refused such a write before its checks.
        // (The unset spellings parse, and check 1 refuses and records them.)
        let id: ContainerID?
        do { id = try ContainerID.parseRequest(idText) } catch {
            malformedRequests += 1
            return Outcome(replies: [.error(errno: error.errno.name, message: error.reason)])
        }
        let writer: Writer, target: ProcessKey, pin: PinnedProcess?
        switch parties(pid: pid, forParent: forParent, peer: peer, pinned: pinned) {
        case .refused(let refusal): return refusal
        case .found(let w, let t, let p): (writer, target, pin) = (w, t, p)
        }
        let existed = id.map { registry.container($0) != nil } ?? true
        do {
            let chain = try registry.register(writer: writer, target: target, id: id, new: new, labels: labels,
                                              topology: LiveTopology(proc: proc))
            var records = registry.takeRecords()
            if let pin, let id, let ns = try? pin.verified({ try ProcessNamespaces.read(pid: $0) }) {
                // The pinned read is the one NS_INFO (the table's may be older or incomplete).
                records.removeAll { $0.type == .nsInfo }
                records.append(Self.namespaceInfo(pid: target.pid, id: id, namespaces: ns))
                tracker.learnNamespaces(pid: target.pid, ns)
                records += registry.takeRecords()
                // Pid 1 of its own pid namespace: whoever enters that namespace joins it.
                if !existed, let pidNS = ns[.pid], pidNS != NamespaceKind.pid.initialInode,
                   (try? pin.verified({ try proc.status(pid: $0) }))?.isPIDNamespaceInit == true {
                    registry.setOwnPIDNamespace(pidNS, of: id)
                }
            }
            return Outcome(replies: [.ok(chain.description)], changed: true, records: records)
        } catch {
            return Outcome(replies: [.error(errno: error.errno.name, message: explained(error))],
                           records: limited(.set, error, peer: peer, now: now))
        }
    }

    /// The registry's records after a refused attempt, without the attempt's own
    /// record when the requester's uid is over its rate (it is counted instead).
    private func limited(_ attempt: RegistrationAttempt, _ error: ContainerFailure, peer: PeerIdentity, now: UInt64)
        -> [ContainerRecord]
    {
        var records = registry.takeRecords()
        let type: AuditRecordType = attempt == .set ? .containerOp : .setCapContID
        // The engine writes the attempt's record last. The budget is the uid that sent
        // the request (SO_PEERCRED), not the writer's: a flood from an orphan acting for
        // init must not use up root's.
        guard let last = records.last, last.type == type else { return records }
        if !refusals.admit(attempt, uid: peer.credentials.uid, errno: error.errno, now: now) { records.removeLast() }
        return records
    }

    /// The engine names the writer; when it is the requesting `contid` that lacks the
    /// privileges (its parent has them), say so.
    private func explained(_ error: ContainerFailure) -> String {
        guard error.errno == .EPERM, let requester = unprivilegedRequester else { return error.reason }
        return "process \(requester) (contid, acting for its parent) lacks CAP_AUDIT_CONTROL in the initial user namespace; the requester must hold the privileges of the process it acts for"
    }

    private func capContID(pid: Int32, value: Bool, forParent: Bool, peer: PeerIdentity, pinned: PinnedProcess?,
                           now: UInt64) -> Outcome {
        let writer: Writer, target: ProcessKey
        switch parties(pid: pid, forParent: forParent, peer: peer, pinned: pinned) {
        case .refused(let refusal): return refusal
        case .found(let w, let t, _): (writer, target) = (w, t)
        }
        do {
            try registry.setCapContID(writer: writer, target: target, value: value, topology: LiveTopology(proc: proc))
            return Outcome(replies: [.ok(value ? "1" : "0")], changed: true, records: registry.takeRecords())
        } catch {
            return Outcome(replies: [.error(errno: error.errno.name, message: explained(error))],
                           records: limited(.capContID, error, peer: peer, now: now))
        }
    }

    /// `NS_INFO opid=.. contid=.. ns_dev=00:04 cgroup=.. ipc=.. mnt=.. net=.. pid=.. time=.. user=.. uts=..` (SPEC §6).
    static func namespaceInfo(pid: Int32, id: ContainerID, namespaces ns: ProcessNamespaces) -> ContainerRecord {
        var body = "opid=\(pid) contid=\(id) ns_dev=\(ns.deviceString)"
        for kind in [NamespaceKind.cgroup, .ipc, .mnt, .net, .pid, .time, .user, .uts] {
            if let ino = ns[kind] { body += " \(kind.rawValue)=\(ino)" }
        }
        return ContainerRecord(type: .nsInfo, body: body)
    }

    private func comm(_ pid: Int32) -> String {
        // Gone already: an exit held back until its last records have passed.
        guard let s = try? proc.stat(pid: pid) else { return "(exited)" }
        return s.comm.map { $0 == " " ? "_" : $0 }.reduce(into: "") { $0.append($1) }
    }
}

/// The process facts of the registration checks, read from /proc at the moment
/// of the request (children of every thread from /proc/PID/task/*/children).
struct LiveTopology: ProcessTopology {
    let proc: ProcFS

    func startTime(of pid: Int32) -> UInt64? { proc.startTime(pid: pid) }
    func parent(of pid: Int32) -> Int32? { (try? proc.stat(pid: pid))?.ppid }
    func childCount(of pid: Int32) -> Int { (try? proc.children(pid: pid))?.count ?? 0 }
}
