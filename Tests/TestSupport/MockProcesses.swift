import AuditCodec
import Glibc
import LinuxAudit

/// A process table filled by hand behind the `ProcessSource` the daemon reads /proc
/// through (as laurel's procfs/mock.rs). Processes not in it do not exist (ESRCH).
public final class MockProcessSource: ProcessSource, @unchecked Sendable {
    public struct Process {
        public var pid: pid_t
        public var ppid: pid_t
        public var startTime: UInt64
        public var comm: String = "test"
        public var state: UInt8 = UInt8(ascii: "S")
        public var threads: [pid_t] = []
        public var uid: UInt32 = 0
        public var capEff: UInt64 = 0
        public var exe: String = "/usr/bin/test"
        public var userNamespace: UInt64 = 0xEFFF_FFFD
        public var pidNamespace: UInt64 = 0xEFFF_FFFC
        /// pid_for_children, when a setns(CLONE_NEWPID) changed it.
        public var pidForChildren: UInt64?
        public var auid: UInt32 = 4_294_967_295
        /// Namespaces other than user and pid (which the fields above give).
        public var namespaces: [NamespaceKind: UInt64] = [:]
        public init(pid: pid_t, ppid: pid_t, startTime: UInt64) {
            self.pid = pid
            self.ppid = ppid
            self.startTime = startTime
            threads = [pid]
        }
    }

    public var table: [pid_t: Process] = [:]
    /// How many times a pid namespace was read (the per-fork cost of joining).
    public private(set) var pidNamespaceReads = 0
    /// How many times all namespaces of a process were read.
    public private(set) var namespaceReads = 0
    public init() {}

    public func add(_ p: Process) { table[p.pid] = p }
    public func remove(_ pid: pid_t) { table[pid] = nil }

    private func find(_ pid: pid_t) throws -> Process {
        guard let p = table[pid] else { throw LinuxAuditError.syscall("open(/proc/\(pid)/stat)", .noSuchProcess) }
        return p
    }

    public func stat(pid: pid_t) throws -> ProcessStat {
        let p = try find(pid)
        return ProcessStat(pid: p.pid, comm: p.comm, state: p.state, ppid: p.ppid, threads: p.threads.count, startTime: p.startTime)
    }

    public func status(pid: pid_t) throws -> ProcessStatus {
        let p = try find(pid)
        return ProcessStatus(name: p.comm, tgid: p.pid, ppid: p.ppid, threads: p.threads.count,
                             uids: [p.uid, p.uid, p.uid, p.uid], capEff: p.capEff)
    }

    public func loginUID(pid: pid_t) throws -> UInt32 { try find(pid).auid }
    public func sessionID(pid: pid_t) throws -> UInt32 { _ = try find(pid); return 4_294_967_295 }
    public func executable(pid: pid_t) throws -> String { try find(pid).exe }
    public func children(pid: pid_t) throws -> [pid_t] {
        _ = try find(pid)
        return table.values.filter { $0.ppid == pid }.map(\.pid).sorted()
    }
    public func userNamespace(pid: pid_t) throws -> UInt64 { try find(pid).userNamespace }
    public func processes() throws -> [ProcessEntry] {
        table.values.sorted { $0.pid < $1.pid }.map {
            ProcessEntry(pid: $0.pid, ppid: $0.ppid, startTime: $0.startTime, threads: $0.threads.count)
        }
    }
    public func threads(pid: pid_t) throws -> [pid_t] { try find(pid).threads }
    public func pidNamespace(pid: pid_t, forChildren: Bool) throws -> UInt64 {
        pidNamespaceReads += 1
        let p = try find(pid)
        return forChildren ? (p.pidForChildren ?? p.pidNamespace) : p.pidNamespace
    }
    public func namespaces(pid: pid_t) throws -> ProcessNamespaces {
        namespaceReads += 1
        let p = try find(pid)
        var inodes = p.namespaces
        inodes[.user] = p.userNamespace
        inodes[.pid] = p.pidNamespace
        return ProcessNamespaces(device: 4, inodes: inodes)
    }
}

/// Process events queued by hand behind the `ProcessEventSource` the tracker reads
/// the proc connector through.
public final class QueuedProcessEvents: ProcessEventSource {
    public var queue: [ProcEvent] = []
    /// Gaps to report on the next read (the connector's ENOBUFS).
    public var gapsToReport = 0
    public private(set) var resubscriptions = 0
    /// Called when a read would wait (nothing queued, a timeout given): a test moves
    /// its clock here, as the real wait would have.
    public var onWait: (Duration) -> Void = { _ in }
    public init() {}

    public var pollDescriptor: Int32 { -1 }

    public func fork(parent: pid_t, child: pid_t, thread: pid_t? = nil) {
        queue.append(ProcEvent(kind: .fork(parentPID: parent, parentTGID: parent, childPID: thread ?? child, childTGID: child)))
    }

    public func exit(_ tgid: pid_t, thread: pid_t? = nil, parent: pid_t = 1) {
        queue.append(ProcEvent(kind: .exit(pid: thread ?? tgid, tgid: tgid, exitCode: 0, exitSignal: 17,
                                           parentPID: parent, parentTGID: parent)))
    }

    public func read(timeout: Duration, maxDatagrams: Int, _ body: (ProcEvent) -> Void) throws -> NetlinkReceiveResult {
        if queue.isEmpty, gapsToReport == 0, timeout > .zero { onWait(timeout) }
        let events = queue.prefix(maxDatagrams)
        queue.removeFirst(events.count)
        for e in events { body(e) }
        let gaps = gapsToReport
        gapsToReport = 0
        return NetlinkReceiveResult(datagrams: events.count, gaps: gaps)
    }

    public func resubscribeUnfiltered() throws { resubscriptions += 1 }
}
