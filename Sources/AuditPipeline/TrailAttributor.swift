// Offline attribution: rebuilds the container registry from what a trail itself
// says, and attributes every event. It applies the CONTAINER_OP records found in
// the log and learns the process tree from the records of fork/exec/exit rules:
//   - a pid seen for the first time is a child of its record's `ppid=` (or of the
//     process whose clone/fork/vfork returned that pid, when `ppid=` no longer names
//     it because the parent exited and the child was reparented);
//   - exit_group ends a process; the end is applied after a grace period of log
//     time, because records of its children and of the exit itself may come later;
//   - a pid reused after its process ended is a new process.
// A child's first records may come before its parent's clone record (vfork: the
// parent's record is written when it resumes): `ppid=` covers that case.

import AuditCodec
import ContainerEngine

public final class TrailAttributor {
    public let registry: ContainerRegistry
    /// Log time (ms) an ended process stays, for late records that name it as parent.
    public let graceMilliseconds: UInt64

    private var generation: UInt64 = 0
    /// Children announced by a clone/fork/vfork return value: pid -> (parent, when).
    private var claims: [Int32: (parent: Int32, time: UInt64)] = [:]
    /// Processes whose exit_group was seen, applied once their grace has passed.
    private var pendingExits: [(pid: Int32, start: UInt64, time: UInt64)] = []
    private var exiting: [Int32: UInt64] = [:]
    private var clock: UInt64 = 0

    public private(set) var registrationsApplied = 0

    public init(registry: ContainerRegistry = ContainerRegistry(), graceMilliseconds: UInt64 = 5000) {
        self.registry = registry
        self.graceMilliseconds = graceMilliseconds
    }

    /// Updates the registry from one event and returns it annotated, with its task's chain.
    public func attribute(_ event: AuditEvent) -> (event: AuditEvent, contid: String?) {
        let t = event.time.totalMilliseconds
        if t > clock { clock = t }
        applyDueExits()
        for r in event.records {
            switch r.type {
            case .containerOp: applyContainerOp(r)
            case .setCapContID: applyCapContID(r)
            default: break
            }
        }
        if let sc = event.first(.syscall) { learn(from: sc) }
        return EventAnnotator.annotate(event, registry: registry)
    }

    /// End of the trail: pending exits are applied (drops happen).
    public func finish() {
        clock = .max
        applyDueExits()
    }

    // MARK: process facts

    private func learn(from sc: AuditRecord) {
        guard let pid = sc.pid else { return }
        let ppid = sc.ppid ?? 0
        known(pid, parent: ppid)
        guard let number = sc.syscall else { return }
        let arch = sc["arch"].flatMap { AuditArch(field: $0) } ?? .x86_64
        switch SyscallKind(arch: arch, number: number) {
        case .fork:
            // The return value is the child's pid as the parent sees it (its pid namespace).
            guard sc.success == true, let child = sc.exit, child > 0, child <= Int64(Int32.max) else { return }
            let flags = sc.argument(0) ?? 0
            if number == SyscallKind.cloneNumber(arch), flags & 0x10000 != 0 { return }  // CLONE_THREAD
            let c = Int32(child)
            if registry.process(c) == nil || exiting[c] != nil { claims[c] = (pid, clock) }
        case .exitGroup:
            guard exiting[pid] == nil, let state = registry.process(pid) else { return }
            exiting[pid] = state.process.start
            pendingExits.append((pid, state.process.start, clock))
        case .other:
            break
        }
    }

    /// Makes sure `pid` is in the registry, as the child of the right parent.
    private func known(_ pid: Int32, parent ppid: Int32) {
        if exiting[pid] != nil {
            // A record after exit_group: the pid names a new process now.
            applyExit(pid)
        } else if registry.process(pid) != nil {
            return
        }
        var parent = ppid
        if let claim = claims.removeValue(forKey: pid), clock &- claim.time <= graceMilliseconds {
            // Reparented (ppid 1, a subreaper, or a parent we never saw): the cloner is the parent.
            let stated = registry.process(ppid)
            if ppid != claim.parent, stated == nil || ppid == 1 || registry.process(claim.parent) != nil {
                parent = claim.parent
            }
        }
        if parent != 0, registry.process(parent) == nil {
            generation += 1
            registry.apply(.discovered(ProcessKey(pid: parent, start: generation), parent: 0))
        }
        generation += 1
        registry.apply(.discovered(ProcessKey(pid: pid, start: generation), parent: parent))
    }

    private func applyDueExits() {
        guard let first = pendingExits.first, first.time &+ graceMilliseconds <= clock || clock == .max else { return }
        var keep: [(pid: Int32, start: UInt64, time: UInt64)] = []
        for e in pendingExits {
            if e.time &+ graceMilliseconds <= clock || clock == .max {
                if exiting[e.pid] == e.start { applyExit(e.pid) }
            } else {
                keep.append(e)
            }
        }
        pendingExits = keep
        // Claims older than the grace are return values nobody used (another pid namespace).
        if claims.count > 4096 { claims = claims.filter { clock &- $0.value.time <= graceMilliseconds } }
    }

    private func applyExit(_ pid: Int32) {
        guard let start = exiting.removeValue(forKey: pid) else { return }
        registry.apply(.exited(ProcessKey(pid: pid, start: start)))
    }

    // MARK: registrations in the trail

    /// The fields of a contid record, whether written directly or wrapped by the kernel
    /// as a user message (`pid=.. uid=.. auid=.. ses=.. msg='op=set ...'`).
    static func payload(_ r: AuditRecord) -> [String: String] {
        var fields = r.fields
        if let msg = fields.first(where: { $0.name == "msg" && $0.form == .singleQuoted }) {
            fields = FieldTokenizer.tokenize(Array(msg.unquoted.utf8)).fields
        }
        var out: [String: String] = [:]
        for f in fields where f.form != .word && out[f.name] == nil { out[f.name] = f.unquoted }
        return out
    }

    private func applyContainerOp(_ r: AuditRecord) {
        let f = Self.payload(r)
        guard f["op"] == "set", f["res"] == "1", let target = f["opid"].flatMap({ Int32($0) }),
              let writer = f["pid"].flatMap({ Int32($0) }), let text = f["contid"],
              let id = try? ContainerID(parsing: text)
        else { return }
        known(writer, parent: 0)
        known(target, parent: writer)
        registry.applyRecordedRegistration(writer: writer, target: target, id: id)
        _ = registry.takeRecords()  // drops caused here are the daemon's records, already in the trail
        registrationsApplied += 1
    }

    private func applyCapContID(_ r: AuditRecord) {
        let f = Self.payload(r)
        guard f["res"] == "1", let target = f["opid"].flatMap({ Int32($0) }), let v = f["capcontid"] else { return }
        registry.applyRecordedCapContID(target: target, value: v != "0")
    }
}

/// What a syscall means to the process tree.
enum SyscallKind {
    case fork, exitGroup, other

    init(arch: AuditArch, number: Int) {
        switch (arch, number) {
        case (.x86_64, 56), (.x86_64, 57), (.x86_64, 58), (.x86_64, 435),
             (.i386, 120), (.i386, 2), (.i386, 190), (.i386, 435),
             (.aarch64, 220), (.aarch64, 435):
            self = .fork
        case (.x86_64, 231), (.i386, 252), (.aarch64, 94):
            self = .exitGroup
        default:
            self = .other
        }
    }

    /// clone's number, whose a0 holds the flags (clone3's a0 is a pointer).
    static func cloneNumber(_ arch: AuditArch) -> Int {
        switch arch {
        case .i386: return 120
        case .aarch64: return 220
        default: return 56
        }
    }
}
