// Offline attribution: rebuilds the container registry from what a trail itself
// says, and attributes every event. It applies the CONTAINER_OP records found in
// the log and learns the process tree from the records of fork/exec/exit rules,
// as the kernel made it (SPEC §5: a child inherits its creator's chain at fork):
//   - a clone/fork/vfork/clone3 return value announces a child of the caller;
//   - a pid seen for the first time is a child of its record's `ppid=` (or of the
//     process whose clone returned that pid, when `ppid=` no longer names it because
//     the parent exited and the child was reparented); a vfork child's records come
//     before its parent's vfork record, and its `ppid=` covers that case;
//   - a `ppid=` naming a process not seen yet is resolved through what the trail
//     announced: the clone that returned that pid makes it the caller's child (a
//     subshell that forks at once is first seen in its child's `ppid=`: its own clone
//     record is written when its clone returns, after the child ran). A `ppid=`
//     naming a pid whose exit_group was seen names the new process that took the pid
//     once a clone announced it, so a reused pid never inherits the dead process's
//     container; without that announcement it names the ended process (a child's
//     late record). Pids 0, 1 and 2 are roots, never in a container;
//   - exit_group ends a process; the end is applied after a grace period of log
//     time, because records of its children and of the exit itself may come later;
//   - a pid reused after its process ended is a new process.
// Reconciling what came too early: a process linked before the trail named its
// parent (under a placeholder, or under a pid that had just exited) is moved when
// the trail names it: its own record's `ppid=`, or, within the grace, a clone that
// returned its pid (later, a return value may be a pid of another pid namespace).
// The processes created under it since move with it; registered ones keep their chain.
//
// Held attribution (`attribute(_:emit:)`) makes the events before that naming
// exact too. Events handed out cannot change, so when a process is first seen with
// an ancestor the trail has not named (nor a clone announced), its event waits, and
// every event after it too (output keeps the trail's order), until a later record
// names that ancestor (its own record's `ppid=`, or a clone returning its pid), or
// the log's clock has passed the waiting event by `holdMilliseconds`, or more than
// `holdLimit` events wait; then it is attributed as the trail stands. Nothing waits
// while parents are known, which is the common case. `attribute(_:)` never holds.

import AuditCodec
import ContainerEngine

public final class TrailAttributor {
    public let registry: ContainerRegistry
    /// Log time (ms) an ended process stays, for late records that name it as parent.
    public let graceMilliseconds: UInt64
    /// Log time (ms) a held event waits for the trail to name its task's ancestor.
    public let holdMilliseconds: UInt64
    /// Most events held at once (memory bound); beyond it the oldest is attributed as the trail stands.
    public let holdLimit: Int

    private var generation: UInt64 = 0
    /// Children announced by a clone/fork/vfork return value: pid -> (parent, when).
    private var claims: [Int32: (parent: Int32, time: UInt64)] = [:]
    /// Processes whose exit_group was seen, applied once their grace has passed.
    private var pendingExits: [(pid: Int32, start: UInt64, time: UInt64)] = []
    private var exiting: [Int32: UInt64] = [:]
    private var clock: UInt64 = 0
    /// Processes linked on a guess (placeholders, children of a pid that had just exited): pid -> (start, when).
    private var guesses: [Int32: (start: UInt64, time: UInt64)] = [:]
    /// Targets of registrations in the trail (pid -> start): their chain is their own, never re-derived.
    private var registered: [Int32: UInt64] = [:]

    /// Held events, in trail order, from `heldFirst`.
    private var held: [AuditEvent] = []
    private var heldFirst = 0
    /// The pid whose parent the first held event waits for (0: not waiting).
    private var awaitedPID: Int32 = 0
    /// Parents named by held events not yet applied: pid -> parent.
    private var hints: [Int32: Int32] = [:]
    /// The newest log time handed to `attribute(_:emit:)`, which closes the hold window.
    private var newest: UInt64 = 0

    public private(set) var registrationsApplied = 0
    /// `op=join` records applied (a process entered a container's pid namespace).
    public private(set) var joinsApplied = 0
    /// CONTAINER_INFO records whose labels were kept with a live container.
    public private(set) var labelsApplied = 0
    /// Events that waited for an ancestor to be named (held attribution).
    public private(set) var eventsHeld = 0
    /// Held events attributed when their window closed, the ancestor still unnamed.
    public private(set) var heldUnresolved = 0
    /// Processes moved under the parent the trail named after they were linked.
    public private(set) var processesRelinked = 0

    public init(registry: ContainerRegistry = ContainerRegistry(), graceMilliseconds: UInt64 = 5000,
                holdMilliseconds: UInt64 = 2000, holdLimit: Int = 4096) {
        self.registry = registry
        self.graceMilliseconds = graceMilliseconds
        self.holdMilliseconds = holdMilliseconds
        self.holdLimit = holdLimit
    }

    /// Learns what `event` says (registrations, process facts) without annotating it:
    /// the pipeline annotates the borrowed event itself from `registry`.
    public func learn(_ event: AuditEvent) {
        _ = process(event, mayWait: false, annotate: false)
    }

    /// Learns from an event given as its SYSCALL facts and its CONTAINER_OP / SET_CAPCONTID
    /// records (the pipeline's path: the facts are read from the borrowed bytes, and the
    /// rare registration records are the only copies made).
    public func learn(time: AuditTime, syscall: SyscallFacts?, records: [AuditRecord]) {
        _ = apply(time: time, syscall: syscall, records: records, mayWait: false)
    }

    /// Updates the registry from one event and returns it annotated, with its task's chain.
    /// Never holds: an event whose task's parent is not named yet is attributed as the trail stands.
    public func attribute(_ event: AuditEvent) -> (event: AuditEvent, contid: String?) {
        process(event, mayWait: false)!
    }

    /// Held attribution: hands `emit` each event annotated, in the order given, once its
    /// task's ancestry is named (see the rule at the top of this file). The registry's own
    /// records are discarded (the trail already has the daemon's).
    public func attribute(_ event: AuditEvent, emit: (AuditEvent, String?) -> Void) {
        let t = event.time.totalMilliseconds
        if t > newest { newest = t }
        if heldFirst == held.count {
            if let r = process(event, mayWait: true) {
                if registry.pendingRecordCount > 0 { _ = registry.takeRecords() }
                emit(r.event, r.contid)
                return
            }
            held.append(event)
            eventsHeld += 1
            return
        }
        held.append(event)
        eventsHeld += 1
        if awaitedPID != 0, hints[awaitedPID] == nil, let sc = event.first(.syscall) { noteHint(SyscallFacts(sc)) }
        release(force: false, emit)
    }

    // MARK: held attribution for the event pipeline

    /// Held attribution on borrowed events (the pipeline's path): learns from an event given
    /// as its SYSCALL facts and registration records, and returns true when it goes on now:
    /// the registry is as the event leaves it, and the caller annotates and writes the
    /// borrowed event. False: nothing was learnt, and the event must wait (its task descends
    /// from a pid the trail has not named yet, or an earlier event waits): the caller hands an
    /// owned copy to `hold(_:release:)`. Nothing waits while parents are known, so the common
    /// case copies nothing.
    public func offer(time: AuditTime, syscall: SyscallFacts?, records: [AuditRecord]) -> Bool {
        let t = time.totalMilliseconds
        if t > newest { newest = t }
        guard heldFirst == held.count else { return false }
        guard apply(time: time, syscall: syscall, records: records, mayWait: true) else { return false }
        if registry.pendingRecordCount > 0 { _ = registry.takeRecords() }
        return true
    }

    /// An event `offer` refused: it waits with those before it; `release` gets each event
    /// that may go on now, in trail order, as read (not annotated), with the registry as
    /// that event leaves it.
    public func hold(_ event: AuditEvent, release emit: (AuditEvent) -> Void) {
        let first = heldFirst == held.count
        held.append(event)
        eventsHeld += 1
        if first { return }  // the offer found what it waits for (awaitedPID)
        if awaitedPID != 0, hints[awaitedPID] == nil, let sc = event.first(.syscall) { noteHint(SyscallFacts(sc)) }
        release(force: false, annotate: false) { e, _ in emit(e) }
    }

    /// End of the trail for `offer`/`hold`: held events go to `release`, then pending exits are applied.
    public func finishHeld(release emit: (AuditEvent) -> Void) {
        release(force: true, annotate: false) { e, _ in emit(e) }
        finish()
    }

    /// End of the trail: held events are handed to `emit`, then pending exits are applied.
    public func finish(emit: (AuditEvent, String?) -> Void) {
        release(force: true, emit)
        finish()
    }

    /// End of the trail: pending exits are applied (drops happen). Events still held
    /// (only `attribute(_:emit:)` holds) are applied without output: use `finish(emit:)`.
    public func finish() {
        if heldFirst < held.count { release(force: true) { _, _ in } }
        clock = .max
        applyDueExits()
    }

    // MARK: held attribution

    /// Hands out held events from the first while their ancestry is named or their window closed.
    private func release(force: Bool, annotate: Bool = true, _ emit: (AuditEvent, String?) -> Void) {
        while heldFirst < held.count {
            let due = force || newest &- held[heldFirst].time.totalMilliseconds > holdMilliseconds
                || held.count - heldFirst > holdLimit
            // Still waiting for the same pid, and nothing named it since: nothing to recompute.
            if awaitedPID != 0, hints[awaitedPID] == nil, !due { return }
            var result = process(held[heldFirst], mayWait: true, annotate: annotate)
            if result == nil {
                // Waiting now for another pid (the one the hint named, or the next event's): look in what is held.
                if !due {
                    if findHint(for: awaitedPID) { continue }
                    return
                }
                heldUnresolved += 1
                result = process(held[heldFirst], mayWait: false, annotate: annotate)
            }
            guard let r = result else { return }
            awaitedPID = 0
            held[heldFirst] = Self.released  // frees the event's records now, not when the queue empties
            heldFirst += 1
            if registry.pendingRecordCount > 0 { _ = registry.takeRecords() }
            emit(r.event, r.contid)
        }
        held.removeAll(keepingCapacity: true)
        heldFirst = 0
        awaitedPID = 0
        hints.removeAll(keepingCapacity: true)
    }

    private static let released = AuditEvent(node: nil, serial: 0, time: AuditTime(seconds: 0, milliseconds: 0), records: [])

    /// The pid, unnamed by the trail so far, that the new process `pid` (its record naming
    /// `ppid`) descends from; 0 when its ancestry is known.
    private func unnamedAncestor(_ pid: Int32, parent ppid: Int32) -> Int32 {
        if let claim = claims[pid], clock &- claim.time <= graceMilliseconds { return 0 }
        var p = ppid
        for _ in 0..<16 {
            switch named(p) {
            case .known: return 0
            case .created(let creator): p = creator
            case .ended, .unknown: return p
            }
        }
        return 0
    }

    /// Records what a held record says of the awaited pid: a clone returned it, or it is its own.
    private func noteHint(_ sc: SyscallFacts) {
        guard let pid = sc.pid else { return }
        if let child = forkReturn(sc), child == awaitedPID {
            hints[child] = pid
        } else if pid == awaitedPID, let ppid = sc.ppid, ppid != 0, ppid != pid {
            hints[pid] = ppid
        }
    }

    /// Looks through the held events for a record naming `pid`'s parent (a clone return first).
    private func findHint(for pid: Int32) -> Bool {
        var own: Int32 = 0
        for i in (heldFirst + 1)..<held.count {
            guard let sc = held[i].first(.syscall).map(SyscallFacts.init), let caller = sc.pid else { continue }
            if let child = forkReturn(sc), child == pid {
                hints[pid] = caller
                return true
            }
            if own == 0, caller == pid, let ppid = sc.ppid, ppid != 0, ppid != pid { own = ppid }
        }
        if own != 0 { hints[pid] = own }
        return own != 0
    }

    // MARK: process facts

    /// Applies one event; nil (and nothing changed for its task) when `mayWait` and its task
    /// descends from a pid the trail has not named yet (`awaitedPID`).
    private func process(_ event: AuditEvent, mayWait: Bool, annotate: Bool = true) -> (event: AuditEvent, contid: String?)? {
        let sc = event.first(.syscall).map(SyscallFacts.init)
        guard apply(time: event.time, syscall: sc, records: event.records, mayWait: mayWait) else { return nil }
        return annotate ? EventAnnotator.annotate(event, registry: registry) : (event, nil)
    }

    /// Applies one event's facts; false (and nothing changed for its task) when `mayWait`
    /// and its task descends from a pid the trail has not named yet (`awaitedPID`).
    private func apply(time: AuditTime, syscall sc: SyscallFacts?, records: [AuditRecord], mayWait: Bool) -> Bool {
        let t = time.totalMilliseconds
        if t > clock { clock = t }
        applyDueExits()
        if let sc, let pid = sc.pid, !known(pid, parent: sc.ppid ?? 0, mayWait: mayWait) { return false }
        for r in records {
            switch r.type {
            case .containerOp: applyContainerOp(r)
            case .setCapContID: applyCapContID(r)
            case .containerInfo: applyContainerInfo(r)
            default: break
            }
        }
        if let sc { learn(from: sc) }
        return true
    }

    /// The process-tree facts of a SYSCALL record whose task is known already.
    private func learn(from sc: SyscallFacts) {
        guard let pid = sc.pid else { return }
        guard let number = sc.syscall else { return }
        let arch = sc.arch ?? .x86_64
        switch SyscallKind(arch: arch, number: number) {
        case .fork:
            guard let c = forkReturn(sc, number: number, arch: arch) else { return }
            if exiting[c] == nil, let state = registry.process(c) {
                // Seen before its creator's record, and linked on a guess: the creator is certain now.
                if !guesses.isEmpty, let g = guesses[c], g.start == state.process.start,
                   clock &- g.time <= graceMilliseconds, state.parent != pid {
                    relink(c, under: pid)
                }
            } else {
                claims[c] = (pid, clock)
            }
        case .exitGroup:
            guard exiting[pid] == nil, let state = registry.process(pid) else { return }
            exiting[pid] = state.process.start
            pendingExits.append((pid, state.process.start, clock))
        case .other:
            break
        }
    }

    /// The child a successful clone/fork/vfork/clone3 returned (not a thread), as the caller sees it.
    private func forkReturn(_ sc: SyscallFacts) -> Int32? {
        guard let number = sc.syscall else { return nil }
        let arch = sc.arch ?? .x86_64
        guard SyscallKind(arch: arch, number: number) == .fork else { return nil }
        return forkReturn(sc, number: number, arch: arch)
    }

    private func forkReturn(_ sc: SyscallFacts, number: Int, arch: AuditArch) -> Int32? {
        // The return value is the child's pid as the parent sees it (its pid namespace).
        guard sc.success == true, let child = sc.exit, child > 0, child <= Int64(Int32.max) else { return nil }
        let flags = sc.a0 ?? 0
        if number == SyscallKind.cloneNumber(arch), flags & 0x10000 != 0 { return nil }  // CLONE_THREAD
        return Int32(child)
    }

    /// Makes sure `pid` is in the registry, as the child of the right parent; false (nothing
    /// changed) when `mayWait` and the trail has not named its ancestry yet.
    @discardableResult
    private func known(_ pid: Int32, parent ppid: Int32, mayWait: Bool = false) -> Bool {
        if exiting[pid] != nil {
            if mayWait, awaits(pid, parent: ppid) { return false }
            // A record after exit_group: the pid names a new process now.
            applyExit(pid)
        } else if let state = registry.process(pid) {
            // First linked under nothing (a placeholder): its own record names its parent now.
            if state.parent == 0, ppid > 2, pid > 2, !isRegistered(state.process) { relink(pid, under: ppid) }
            return true
        } else if mayWait, awaits(pid, parent: ppid) {
            return false
        }
        var parent = ppid
        if let claim = claims.removeValue(forKey: pid), clock &- claim.time <= graceMilliseconds {
            // Reparented (ppid 1, a subreaper, or a parent we never saw): the cloner is the parent.
            let stated = registry.process(ppid)
            if ppid != claim.parent, stated == nil || ppid == 1 || registry.process(claim.parent) != nil {
                parent = claim.parent
            }
        }
        let sure = parent == 0 || ensureParent(parent)
        create(pid, parent: parent, guess: !sure)
        return true
    }

    private func awaits(_ pid: Int32, parent ppid: Int32) -> Bool {
        awaitedPID = unnamedAncestor(pid, parent: ppid)
        return awaitedPID != 0
    }

    /// What the trail says of a pid named as a parent.
    private enum Named { case known, created(by: Int32), ended, unknown }

    private func named(_ pid: Int32) -> Named {
        if pid <= 2 { return .known }  // the kernel's roots (none, init, kthreadd): never in a container
        let ended = exiting[pid] != nil
        if !ended, registry.process(pid) != nil { return .known }
        // A clone returned it since: the process that has the pid now, created by that caller.
        if let claim = claims[pid], clock &- claim.time <= graceMilliseconds, claim.parent != pid {
            return .created(by: claim.parent)
        }
        if let parent = hints[pid], parent != pid { return .created(by: parent) }
        return ended ? .ended : .unknown
    }

    /// Makes sure `pid`, named as a parent, is in the registry as the process the trail says
    /// it is now; false when the link to it is a guess (the pid's process has just exited).
    private func ensureParent(_ pid: Int32, depth: Int = 0) -> Bool {
        switch named(pid) {
        case .known:
            if pid > 0, registry.process(pid) == nil { create(pid, parent: 0) }
            return true
        case .created(let creator):
            claims.removeValue(forKey: pid)
            hints.removeValue(forKey: pid)
            if exiting[pid] != nil { applyExit(pid) }
            let sure = depth < 16 ? ensureParent(creator, depth: depth + 1) : false
            create(pid, parent: creator, guess: !sure)
            return true
        case .ended:
            // A child's late record (the parent just exited), or a reuse not announced yet.
            return false
        case .unknown:
            create(pid, parent: 0)
            return true
        }
    }

    private func create(_ pid: Int32, parent: Int32, guess: Bool = false) {
        generation += 1
        registry.apply(.discovered(ProcessKey(pid: pid, start: generation), parent: parent))
        if guess || (parent == 0 && pid > 2) { guesses[pid] = (generation, clock) }
    }

    private func isRegistered(_ process: ProcessKey) -> Bool {
        !registered.isEmpty && registered[process.pid] == process.start
    }

    /// Re-creates `root` as a child of `parent`, with the processes created under it since
    /// (those not registered themselves): their chains become what the kernel gave them.
    private func relink(_ root: Int32, under parent: Int32) {
        guesses.removeValue(forKey: root)
        guard parent != root, let rootState = registry.process(root), !isRegistered(rootState.process) else { return }
        _ = ensureParent(parent)
        // Never under its own descendant (a trail that contradicts itself).
        var up = parent
        for _ in 0..<4096 {
            guard up > 2, let s = registry.process(up) else { break }
            if up == root { return }
            up = s.parent
        }
        let all = registry.allProcesses()
        var children: [Int32: [ProcessKey]] = [:]
        for s in all where s.parent > 0 && s.parent != s.process.pid { children[s.parent, default: []].append(s.process) }
        var order: [(process: ProcessKey, parent: Int32)] = [(rootState.process, parent)]
        var i = 0
        while i < order.count {
            for c in children[order[i].process.pid] ?? [] where !isRegistered(c) { order.append((c, order[i].process.pid)) }
            i += 1
        }
        for m in order.reversed() { registry.apply(.exited(m.process)) }
        for m in order {
            generation += 1
            registry.apply(.discovered(ProcessKey(pid: m.process.pid, start: generation), parent: m.parent))
            let old = m.process
            if exiting[old.pid] == old.start {
                exiting[old.pid] = generation
                for k in pendingExits.indices where pendingExits[k].pid == old.pid && pendingExits[k].start == old.start {
                    pendingExits[k].start = generation
                }
            }
            if let g = guesses[old.pid], g.start == old.start { guesses[old.pid] = (generation, g.time) }
        }
        processesRelinked += order.count
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
        if guesses.count > 4096 { guesses = guesses.filter { clock &- $0.value.time <= graceMilliseconds } }
    }

    private func applyExit(_ pid: Int32) {
        guard let start = exiting.removeValue(forKey: pid) else { return }
        if isRegistered(ProcessKey(pid: pid, start: start)) { registered.removeValue(forKey: pid) }
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
        guard f["res"] == "1", let target = f["opid"].flatMap({ Int32($0) }), let text = f["contid"],
              let id = try? ContainerID(parsing: text)
        else { return }
        if f["op"] == "join" {
            // A process that entered the container's pid namespace (SPEC §4): it joins, and the
            // processes it creates from here on inherit the chain.
            known(target, parent: 0)
            registry.applyRecordedJoin(target: target, id: id)
            joinsApplied += 1
            return
        }
        guard f["op"] == "set", let writer = f["pid"].flatMap({ Int32($0) }) else { return }
        known(writer, parent: 0)
        known(target, parent: writer)
        registry.applyRecordedRegistration(writer: writer, target: target, id: id, uid: f["uid"].flatMap { UInt32($0) },
                                           exe: f["exe"].map { Array($0.utf8) })
        if let state = registry.process(target) { registered[target] = state.process.start }
        _ = registry.takeRecords()  // drops caused here are the daemon's records, already in the trail
        registrationsApplied += 1
    }

    /// A container's labels (CONTAINER_INFO, written directly or wrapped by the kernel as a
    /// user message): kept with the live container, so JSON output carries them.
    private func applyContainerInfo(_ r: AuditRecord) {
        let body: [UInt8]
        if let msg = r.fields.first(where: { $0.name == "msg" && $0.form == .singleQuoted }) {
            body = Array(msg.unquoted.utf8)
        } else {
            body = r.withBody { Array($0) }
        }
        guard let info = try? ContainerInfo.parse(body: body) else { return }
        if registry.applyRecordedLabels(id: info.id, labels: info.labels) { labelsApplied += 1 }
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
