import AuditCodec
import ContainerEngine
import Glibc
import LinuxAudit

// Exact process tracking (SPEC §5): the proc connector's FORK is queued to our
// socket when the child is created, before it can cause any audit record, so
// draining the connector before each batch of records makes inheritance exact.
// Exits are held back: a process's last records (exit_group) reach us after
// its EXIT, so its container must outlive it until they have been seen.

/// Feeds the registry from the process events (the proc connector), /proc scans
/// and the `ppid=` of records; holds exits for a grace period. The kernel comes in
/// through `events` and `processes`, time through `clock`: tests substitute all three.
final class ProcessTracker {
    let registry: ContainerRegistry
    let events: ProcessEventSource
    let processes: ProcessSource
    let clock: TimeSource
    let graceMilliseconds: UInt64

    /// Exits waiting for the audit stream to pass them: (process, wall time of the EXIT in ms).
    private var pendingExits: [(key: ProcessKey, wallMs: UInt64)] = []
    private var pendingHead = 0
    private var pendingByPID: [Int32: UInt64] = [:]
    /// Thread groups whose leader exited while other threads live (pthread_exit from
    /// main, or de_thread of an exec from another thread): tgid → start time. Their
    /// real end is the EXIT of their last thread.
    private var leaderGone: [Int32: UInt64] = [:]
    /// Held exits cancelled because the thread group was still alive.
    private(set) var leaderExitsCancelled = 0

    private(set) var connectorGaps = 0
    private(set) var rescans = 0
    private(set) var forks = 0
    private(set) var exits = 0
    /// Processes first seen in a record (their FORK was not seen), added with the record's ppid=.
    private(set) var discoveredFromRecords = 0
    /// Set when something changed that a registry snapshot should keep.
    var changed = false
    /// Handles of the namespaces seen, for NS_DESTROY (nil: namespaces are not read).
    var namespaceWatch: NamespaceWatch?

    init(registry: ContainerRegistry, events: ProcessEventSource, processes: ProcessSource, clock: TimeSource,
         graceMilliseconds: Int) {
        self.registry = registry
        self.events = events
        self.processes = processes
        self.clock = clock
        self.graceMilliseconds = UInt64(graceMilliseconds)
    }

    /// A child this process started to check that the connector reports forks, and
    /// whether its FORK was seen.
    private var probePID: Int32 = 0
    private var probeSeen = false

    /// The kernel subscribes silently: a filtered subscription on a kernel without
    /// filters, or a subscriber outside the initial namespaces, gets nothing. Starts
    /// a short-lived child and waits up to 1 s for its FORK; without it, subscribes
    /// again without the filter and tries once more; then gives up.
    func verifySubscription() throws {
        if try probe() { return }
        Log.warning("the proc connector reported no FORK of a test child; subscribing again without the event filter")
        try events.resubscribeUnfiltered()
        if try probe() { return }
        throw DaemonError.connectorSilent
    }

    private func probe() throws -> Bool {
        let pid = try ChildProcess.spawn("/bin/true", ["/bin/true"])
        probePID = pid
        probeSeen = false
        defer {
            _ = try? ChildProcess.wait(pid)
            probePID = 0
        }
        let deadline = clock.monotonicMilliseconds + 1000
        while !probeSeen {
            let now = clock.monotonicMilliseconds
            guard now < deadline else { break }
            do {
                _ = try events.read(timeout: .milliseconds(Int64(deadline - now)), maxDatagrams: 512) { self.apply($0) }
            } catch {
                Log.error("proc connector: \(error)")
                break
            }
        }
        return probeSeen
    }

    var descriptor: Int32 { events.pollDescriptor }
    var pendingExitCount: Int { pendingExits.count - pendingHead }

    // MARK: connector

    /// Reads every queued connector event without blocking. ENOBUFS means events
    /// were lost: /proc is scanned again.
    func drain() {
        var lostSome = false
        while true {
            let result: NetlinkReceiveResult
            do {
                result = try events.read(timeout: .zero, maxDatagrams: 512) { self.apply($0) }
            } catch {
                Log.error("proc connector: \(error)")
                return
            }
            if result.gaps > 0 {
                connectorGaps += result.gaps
                lostSome = true
            }
            if result.datagrams + result.gaps < 512 { break }
        }
        if lostSome {
            Log.warning("proc connector overflowed (\(connectorGaps) overruns so far); rescanning /proc")
            scan()
        }
    }

    func apply(_ event: ProcEvent) {
        switch event.kind {
        case let .fork(_, parentTGID, childPID, childTGID):
            if childTGID == probePID, probePID != 0 { probeSeen = true }
            if childPID != childTGID {
                registry.apply(.created(parent: childTGID, child: ProcessKey(pid: childPID, start: 0), kind: .thread))
                return
            }
            forks += 1
            if pendingByPID[childPID] != nil { applyExit(pid: childPID) }
            leaderGone[childPID] = nil
            // The start time names the process for good (pid reuse); a child already gone gets 0.
            let start = processes.startTime(pid: childPID) ?? 0
            let child = ProcessKey(pid: childPID, start: start)
            registry.apply(.created(parent: parentTGID, child: child))
            // The parent's children go into another pid (or time) namespace than its own
            // (after unshare or setns of CLONE_NEWPID): only their namespaces are read at fork.
            if !childrenElsewhere.isEmpty, childrenElsewhere[parentTGID] != nil { learnNamespaces(of: childPID) }
            // Joining by namespaces (SPEC §4): read only while some container has a pid
            // namespace of its own, so the host's forks cost nothing more otherwise.
            if registry.hasOwnPIDNamespaces { joinIfEntered(child, parent: parentTGID) }
        case let .exit(pid, tgid, _, _, _, _):
            if pid != tgid {
                registry.apply(.threadExited(process: tgid))
                // A group whose leader is gone ends with its last thread: hold an exit,
                // checked again against /proc when it falls due.
                if let start = leaderGone[tgid], pendingByPID[tgid] == nil,
                   registry.process(tgid)?.process.start == start {
                    pendingByPID[tgid] = start
                    pendingExits.append((ProcessKey(pid: tgid, start: start), clock.wallMilliseconds))
                }
                return
            }
            guard let state = registry.process(pid) else { return }
            childrenElsewhere[pid] = nil
            if let watch = namespaceWatch { watch.lastUserExited(registry.namespacesOnlyUsed(by: pid)) }
            registry.processExited(pid)
            exits += 1
            if pendingByPID[pid] != nil { applyExit(pid: pid) }
            pendingByPID[pid] = state.process.start
            pendingExits.append((state.process, clock.wallMilliseconds))
        default:
            break
        }
    }

    /// Forks whose pid namespace could not be read (the child and its parent both gone
    /// before the FORK was read): a join they made, if any, is missed.
    private(set) var pidNamespacesUnread = 0
    private(set) var joins = 0

    /// A child born into a container's own pid namespace (its parent entered it with
    /// setns) joins that container. The child's namespace is read, or, when it is gone
    /// already, its parent's pid_for_children (which the child was created in).
    private func joinIfEntered(_ child: ProcessKey, parent: Int32) {
        let ns: UInt64
        var identity = child.pid
        if let own = try? processes.pidNamespace(pid: child.pid, forChildren: false) {
            ns = own
        } else if let inherited = try? processes.pidNamespace(pid: parent, forChildren: true) {
            (ns, identity) = (inherited, parent)  // a fork's credentials are its parent's
        } else {
            pidNamespacesUnread += 1
            return
        }
        guard registry.container(ownPIDNamespace: ns) != nil else { return }
        let joiner = self.identity(of: identity, as: child)
        if registry.joinIfEntered(child, pidNamespace: ns, joiner: joiner) != nil {
            joins += 1
            changed = true
        }
    }

    /// The subject fields of an op=join record (`pid=` the joining process), read from
    /// `pid`: the process itself, or its parent when it is gone already.
    private func identity(of pid: Int32, as process: ProcessKey) -> Writer {
        let status = try? processes.status(pid: pid)
        return Writer(process: process, hasAuditControl: false, uid: status?.realUID ?? UInt32.max,
                      auid: (try? processes.loginUID(pid: pid)) ?? UInt32.max,
                      ses: (try? processes.sessionID(pid: pid)) ?? UInt32.max,
                      comm: status?.name ?? "?", exe: (try? processes.executable(pid: pid)) ?? "?")
    }

    /// Applies the held exit of `pid` now (its pid is being reused, or it is due).
    private func applyExit(pid: Int32) {
        guard let start = pendingByPID.removeValue(forKey: pid) else { return }
        leaderGone[pid] = nil
        registry.apply(.exited(ProcessKey(pid: pid, start: start)))
        if registry.pendingRecordCount > 0 { changed = true }
    }

    /// Applies held exits whose records must have arrived: the audit stream has
    /// passed their time (`streamMs`, the newest record time seen), or, with the
    /// stream idle, the grace period has passed.
    func applyDueExits(streamMs: UInt64, now: UInt64, streamIdle: Bool) {
        while pendingHead < pendingExits.count {
            let (key, wallMs) = pendingExits[pendingHead]
            // Records are stamped at syscall entry with a coarse clock (one tick, 4 ms
            // at HZ=250); one stamped 50 ms after the exit was queued after its last record.
            let passed = streamMs > wallMs + 50
            let expired = streamIdle && now > wallMs + graceMilliseconds
            guard passed || expired || now > wallMs + 10 * graceMilliseconds else { break }
            pendingHead += 1
            guard pendingByPID[key.pid] == key.start else { continue }
            if key.start != 0, processes.isThreadGroupAlive(tgid: key.pid, start: key.start) {
                // The leader exited, the process did not: the exit is cancelled.
                pendingByPID[key.pid] = nil
                leaderGone[key.pid] = key.start
                leaderExitsCancelled += 1
                continue
            }
            applyExit(pid: key.pid)
        }
        if pendingHead > 4096, pendingHead * 2 > pendingExits.count {
            pendingExits.removeFirst(pendingHead)
            pendingHead = 0
        }
    }

    /// Applies every held exit (shutdown).
    func applyAllExits() {
        for pid in Array(pendingByPID.keys) { applyExit(pid: pid) }
        pendingExits.removeAll()
        pendingHead = 0
    }

    // MARK: /proc

    /// Scans /proc: unknown live processes are added under their parents (parents
    /// first); tracked processes that are gone are exited (after the grace period).
    func scan() {
        rescans += 1
        let entries: [ProcessEntry]
        do { entries = try processes.processes() } catch {
            Log.error("scanning /proc: \(error)")
            return
        }
        var byPID: [Int32: ProcessEntry] = [:]
        for e in entries { byPID[e.pid] = e }
        var done = Set<Int32>()
        func add(_ e: ProcessEntry) {
            var chain: [ProcessEntry] = []
            var current: ProcessEntry? = e
            while let c = current, !done.contains(c.pid) {
                done.insert(c.pid)
                chain.append(c)
                current = byPID[c.ppid]
            }
            for c in chain.reversed() {
                if let known = registry.process(c.pid), known.process.start == c.startTime {
                    // Restored from a snapshot, or discovered before: name its namespaces.
                    if let watch = namespaceWatch, let set = registry.namespaces(of: c.pid) {
                        if set.isEmpty { learnNamespaces(of: c.pid) } else { watch.learn(pid: c.pid, set) }
                    }
                    continue
                }
                let key = ProcessKey(pid: c.pid, start: c.startTime)
                registry.apply(.discovered(key, parent: c.ppid, threads: Int32(clamping: c.threads),
                                           namespaces: readNamespaces(of: c.pid)))
                // Born into a container's pid namespace while its FORK was missed (start, overflow).
                if registry.hasOwnPIDNamespaces { joinIfEntered(key, parent: c.ppid) }
            }
        }
        for e in entries.sorted(by: { $0.pid < $1.pid }) { add(e) }
        let now = clock.wallMilliseconds
        for state in registry.allProcesses() where byPID[state.process.pid]?.startTime != state.process.start {
            guard pendingByPID[state.process.pid] == nil else { continue }
            pendingByPID[state.process.pid] = state.process.start
            pendingExits.append((state.process, now))
        }
    }

    /// A process first seen in a record: added with the record's ppid (its parent's
    /// container as it is now, which is what it inherited unless its parent was
    /// registered after the fork; the FORK was lost, so this is the best there is).
    func discover(pid: Int32, ppid: Int32) {
        if registry.process(pid) != nil { return }
        discoveredFromRecords += 1
        if registry.process(ppid) == nil, ppid > 1, let s = try? processes.stat(pid: ppid) {
            registry.apply(.discovered(ProcessKey(pid: ppid, start: s.startTime), parent: s.ppid))
        }
        let key = ProcessKey(pid: pid, start: processes.startTime(pid: pid) ?? 0)
        registry.apply(.discovered(key, parent: ppid, namespaces: readNamespaces(of: pid)))
        if registry.hasOwnPIDNamespaces { joinIfEntered(key, parent: ppid) }
    }

    /// Makes sure a live process (as the kernel says now) is in the registry,
    /// with its ancestors; used before a registration.
    func ensureTracked(_ key: ProcessKey) {
        func known(_ k: ProcessKey) -> Bool { registry.process(k.pid)?.process.start == k.start }
        if known(key) { return }
        var list: [(key: ProcessKey, parent: Int32)] = []
        var k = key
        while let s = try? processes.stat(pid: k.pid), s.startTime == k.start {
            list.append((k, s.ppid))
            guard s.ppid > 0, let ps = try? processes.stat(pid: s.ppid) else { break }
            let pk = ProcessKey(pid: s.ppid, start: ps.startTime)
            if known(pk) { break }
            k = pk
        }
        for (k, parent) in list.reversed() {
            registry.apply(.discovered(k, parent: parent, namespaces: readNamespaces(of: k.pid)))
        }
    }

    // MARK: namespaces (SPEC §6 NS_CREATE, NS_CHANGE, NS_DESTROY)

    /// Processes whose pid_for_children or time_for_children is not their own
    /// namespace: tgid -> the namespaces their children get.
    private var childrenElsewhere: [Int32: NamespaceSet] = [:]
    /// Namespace syscalls whose process was gone before its namespaces could be read.
    private(set) var namespacesUnread = 0
    /// Namespace syscalls seen (successful unshare, setns, clone with CLONE_NEW*, clone3).
    private(set) var namespaceSyscalls = 0

    /// /proc/PID/ns/* as a set (and named for NS_DESTROY); nil when not read or gone.
    func readNamespaces(of pid: Int32) -> NamespaceSet? {
        guard let watch = namespaceWatch, let ns = try? processes.namespaces(pid: pid) else { return nil }
        let set = NamespaceSet(ns.inodes)
        watch.learn(pid: pid, set)
        return set
    }

    /// Reads a tracked process's namespaces into the registry, silently.
    func learnNamespaces(of pid: Int32) {
        guard let set = readNamespaces(of: pid) else { return }
        registry.learnNamespaces(pid: pid, set)
    }

    /// The namespaces of a process read elsewhere (a registration's pinned read).
    func learnNamespaces(pid: Int32, _ ns: ProcessNamespaces) {
        let set = NamespaceSet(ns.inodes)
        namespaceWatch?.learn(pid: pid, set)
        registry.learnNamespaces(pid: pid, set)
    }

    /// A SYSCALL record of contidd's tracking rules: a successful unshare or setns
    /// moved `pid` (NS_CREATE, NS_CHANGE); a clone with CLONE_NEW* flags, or a
    /// clone3, made a child whose namespaces are compared with its parent's (NS_CREATE).
    /// The process's /proc/PID/ns/* is read once, now; a process gone by then is counted.
    func namespaceSyscall(_ facts: SyscallFacts) {
        guard namespaceWatch != nil, facts.success == true, let arch = facts.arch, let number = facts.syscall,
              let call = arch.tracked(number), let pid = facts.pid, pid > 0 else { return }
        let flags = CloneFlags(rawValue: facts.a0 ?? 0)
        switch call {
        case .unshare, .setns:
            if call == .unshare, flags.intersection(Self.namespaceFlags).isEmpty { return }
            namespaceSyscalls += 1
            guard registry.process(pid) != nil else { return }
            let operation: NamespaceOperation = call == .unshare ? .unshare : .setns
            guard let set = readNamespaces(of: pid) else {
                namespacesUnread += 1
                return
            }
            registry.apply(.namespacesChanged(pid: pid, operation: operation, namespaces: set))
            forChildren(pid: pid, operation: operation, own: set)
            changed = true
        case .clone, .clone3:
            if call == .clone, flags.intersection(Self.cloneNamespaceFlags).isEmpty { return }
            guard let exit = facts.exit, exit > 0, let child = Int32(exactly: exit) else { return }
            namespaceSyscalls += 1
            // exit= is the child's pid in the caller's pid namespace: only a child the
            // table has under this parent is the one (a caller in another pid namespace is not).
            guard registry.process(child)?.parent == pid else { return }
            guard let set = readNamespaces(of: child) else {
                namespacesUnread += 1
                return
            }
            registry.apply(.namespacesChanged(pid: child, operation: .clone, namespaces: set))
            changed = true
        default:
            return
        }
    }

    /// unshare or setns of CLONE_NEWPID moves only the namespace the process's children
    /// are created in (pid_for_children): NS_CREATE/NS_CHANGE for it, and its children's
    /// namespaces are read at fork from then on. (time_for_children: the same, not read.)
    private func forChildren(pid: Int32, operation: NamespaceOperation, own: NamespaceSet) {
        guard let p = try? processes.pidNamespace(pid: pid, forChildren: true), p != 0 else { return }
        let before = childrenElsewhere[pid]?.pid ?? own.pid
        if p != before {
            registry.namespaceMovedForChildren(pid: pid, operation: operation, .pid, old: before, new: p)
        }
        if p == own.pid {
            childrenElsewhere[pid] = nil
        } else {
            var children = NamespaceSet()
            children.pid = p
            childrenElsewhere[pid] = children
        }
    }

    /// CLONE_NEW* bits of unshare and clone3; clone(2) without CLONE_NEWTIME (0x80 is
    /// part of its exit signal there).
    static let namespaceFlags: CloneFlags = [.newTime, .newNS, .newCgroup, .newUTS, .newIPC, .newUser, .newPID, .newNet]
    static let cloneNamespaceFlags = namespaceFlags.subtracting(.newTime)
}
