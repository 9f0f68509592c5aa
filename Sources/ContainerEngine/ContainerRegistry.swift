import AuditCodec

// The engine: processes, container objects and namespaces, fed with typed facts
// and registration requests, producing records. No I/O, no clock, no kernel:
// tests drive it like an embedded channel, the daemon and offline replay alike.

/// The container registry of one host.
///
/// Single-threaded by design (one owner feeds facts in order); not Sendable.
public final class ContainerRegistry {
    var processes = ProcessTable()
    var objects = ContainerObjectTable()
    var namespaces = NamespaceTable()
    var network = NetworkNamespaceMembership()
    /// Pid namespaces of containers whose first process is their pid 1 → object index.
    var pidNamespaceOwners: [UInt64: Int32] = [:]
    private var outbox: [ContainerRecord] = []
    /// Scratch lists reused between facts so exits allocate nothing in the common case.
    private var droppedScratch: [ContainerObject] = []
    private var unusedScratch: [NamespaceKey] = []

    /// The nsfs device, printed `ns_dev=00:04` (major:minor in hex, as the kernel prints devices).
    public let namespaceDevice: (major: UInt32, minor: UInt32)
    private let namespaceDeviceText: [UInt8]

    /// Processes found in the table with another start time: they died unseen (lost exit events).
    public internal(set) var diedUnseen = 0

    /// When true, a namespace no longer used by any known task is not reported at
    /// once: it becomes a candidate (`takeUnusedNamespaces()`) that the owner confirms
    /// dead (an nsfs handle going stale) and reports with `namespaceDestroyed`, so a
    /// namespace held by a bind mount or an open descriptor is not reported while it
    /// lives. Offline replay keeps the default: destroyed when unused.
    public var confirmsNamespaceDestruction = false
    private var unusedNamespaces: [(kind: NamespaceKind, inode: UInt64)] = []
    /// The 64-bit id of a namespace (nsfs NS_GET_ID), appended as ` nsid=N` to NS_* records.
    public var namespaceIdentifier: ((NamespaceKind, UInt64) -> UInt64?)? = nil

    public init(namespaceDevice: (major: UInt32, minor: UInt32) = (0, 4)) {
        self.namespaceDevice = namespaceDevice
        func hex2(_ v: UInt32) -> String {
            let s = String(v, radix: 16)
            return s.count < 2 ? "0" + s : s
        }
        namespaceDeviceText = Array("\(hex2(namespaceDevice.major)):\(hex2(namespaceDevice.minor))".utf8)
    }

    // MARK: Records out

    /// The records produced since the last call, oldest first.
    public func takeRecords() -> [ContainerRecord] {
        defer { outbox.removeAll(keepingCapacity: true) }
        return outbox
    }

    /// How many records wait in the outbox.
    public var pendingRecordCount: Int { outbox.count }

    // MARK: Facts in

    public func apply(_ fact: ProcessFact) {
        switch fact {
        case let .created(parent, child, kind, cloneFlags, childNamespaces):
            if kind == .thread {
                if child.pid != parent, processes[child.pid] != nil { removeDiedUnseen(child.pid) }
                processes[parent]?.threads += 1
                return
            }
            guard child.pid != parent else { return }
            if let e = processes[child.pid] {
                if e.start == child.start { return }
                removeDiedUnseen(child.pid)
            }
            let parentSet = processes[parent].map { namespaces[$0.namespaces] } ?? NamespaceSet()
            var set = parentSet
            for type in NamespaceKind.allCases {
                if let given = childNamespaces?[type], given != 0 {
                    set[type] = given
                } else if cloneFlags.contains(type.cloneFlag) {
                    set[type] = 0
                }
            }
            add(child, parent: parent, threads: 1, namespaces: set)
            for type in NamespaceKind.allCases where cloneFlags.contains(type.cloneFlag) {
                guard set[type] != 0, set[type] != parentSet[type] else { continue }
                emitNamespaceMove(
                    .nsCreate, operation: .clone, pid: child.pid, type: type, old: parentSet[type], new: set[type])
            }

        case let .executed(key):
            if let e = processes[key.pid], e.start != key.start { removeDiedUnseen(key.pid) }

        case let .threadExited(process):
            if let t = processes[process]?.threads, t > 1 { processes[process]!.threads = t - 1 }

        case let .exited(key):
            guard let e = processes[key.pid] else { return }
            if e.start == key.start {
                remove(key.pid)
            } else {
                removeDiedUnseen(key.pid)
            }

        case let .namespacesChanged(pid, operation, changed):
            changeNamespaces(pid: pid, operation: operation, changed: changed)

        case let .discovered(key, parent, threads, set):
            if let e = processes[key.pid] {
                if e.start == key.start { return }
                removeDiedUnseen(key.pid)
            }
            guard key.pid != parent else { return }
            add(key, parent: parent, threads: max(1, threads), namespaces: set ?? NamespaceSet())
        }
    }

    private func add(_ key: ProcessKey, parent: Int32, threads: Int32, namespaces set: NamespaceSet) {
        var container = ProcessEntry.noContainer
        var parentStart: UInt64 = 0
        if let p = processes[parent] {
            container = p.container
            parentStart = p.start
            processes[parent]!.children += 1
        }
        if container >= 0 { objects[container].members += 1 }
        let nsIndex = namespaces.retain(set)
        processes[key.pid] = ProcessEntry(
            start: key.start, parentStart: parentStart, parent: parent, container: container,
            children: 0, threads: threads, namespaces: nsIndex, capContID: false)
        network.join(set.net, object: container)
    }

    private func removeDiedUnseen(_ pid: Int32) {
        diedUnseen += 1
        remove(pid)
    }

    /// Removes an exited process: its parent loses a child, its container a member
    /// (maybe dropping it), its namespaces a user (maybe destroying them).
    private func remove(_ pid: Int32) {
        guard let e = processes.entries.removeValue(forKey: pid) else { return }
        if let p = processes.liveParent(of: e), let pe = processes[p], pe.children > 0 {
            processes[p]!.children -= 1
        }
        let set = namespaces[e.namespaces]
        network.leave(set.net, object: e.container)
        if e.container >= 0 {
            // Pid 1 gone: its pid namespace is dead, and its inode may be reused.
            let o = objects[e.container]
            if o.pidNamespace != 0, o.firstPID == pid, pidNamespaceOwners[o.pidNamespace] == e.container {
                pidNamespaceOwners[o.pidNamespace] = nil
            }
            releaseMember(e.container, opid: pid)
        }
        namespaces.release(e.namespaces, unused: &unusedScratch)
        emitDestroyed()
    }

    /// Makes process `pid` a member of `object`, leaving `old` (registration, injection,
    /// nesting, joins): membership counts and network-namespace membership follow.
    /// Returns the process's namespace set.
    @discardableResult
    private func moveMember(_ pid: Int32, namespaces index: UInt32, into object: Int32, from old: Int32?) -> NamespaceSet {
        objects[object].members += 1
        processes[pid]!.container = object
        let set = namespaces[index]
        network.join(set.net, object: object)
        if let old {
            network.leave(set.net, object: old)
            releaseMember(old, opid: pid)
        }
        return set
    }

    private func releaseMember(_ object: Int32, opid: Int32) {
        objects.release(object, dropped: &droppedScratch)
        for o in droppedScratch {
            if o.pidNamespace != 0, let i = pidNamespaceOwners[o.pidNamespace], objects[i].id == o.id {
                pidNamespaceOwners[o.pidNamespace] = nil
            }
            var text = RecordText()
            text.field("op", raw: "drop")
            text.field("opid", opid)
            text.field("contid", id: nil)
            text.field("old-contid", raw: o.chainBytes)
            text.field("res", 1)
            outbox.append(text.record(.containerOp))
        }
        droppedScratch.removeAll(keepingCapacity: true)
    }

    private func emitDestroyed() {
        for key in unusedScratch {
            if confirmsNamespaceDestruction {
                unusedNamespaces.append((key.type, key.inode))
            } else {
                namespaceDestroyed(key.type, inode: key.inode)
            }
        }
        unusedScratch.removeAll(keepingCapacity: true)
    }

    /// Namespaces that lost their last known user since the last call (with
    /// `confirmsNamespaceDestruction`); one may be in use again by the time it is checked.
    public func takeUnusedNamespaces() -> [(kind: NamespaceKind, inode: UInt64)] {
        defer { unusedNamespaces.removeAll(keepingCapacity: true) }
        return unusedNamespaces
    }

    /// Whether a known task uses the namespace.
    public func isNamespaceInUse(_ kind: NamespaceKind, inode: UInt64) -> Bool {
        namespaces.isInUse(NamespaceKey(type: kind, inode: inode))
    }

    /// `NS_DESTROY ns=.. ino=.. ns_dev=..[ nsid=..]`: the namespace is gone.
    public func namespaceDestroyed(_ kind: NamespaceKind, inode: UInt64, nsid: UInt64? = nil) {
        var text = RecordText()
        text.field("ns", raw: kind.name)
        text.field("ino", inode)
        text.field("ns_dev", raw: namespaceDeviceText)
        if let id = nsid ?? namespaceIdentifier?(kind, inode) { text.field("nsid", id) }
        outbox.append(text.record(.nsDestroy))
    }

    /// unshare or setns of CLONE_NEWPID: `pid`'s children will be created in `new`
    /// (pid_for_children), its own namespace stays. NS_CREATE (unshare) or NS_CHANGE (setns).
    public func namespaceMovedForChildren(
        pid: Int32, operation: NamespaceOperation, _ kind: NamespaceKind, old: UInt64, new: UInt64
    ) {
        guard processes[pid] != nil, old != new else { return }
        emitNamespaceMove(operation == .setns ? .nsChange : .nsCreate, operation: operation, pid: pid, type: kind,
                          old: old, new: new)
    }

    /// The namespaces `pid` is the last known user of (checked at its EXIT, before the
    /// exit is applied: a namespace already gone is reported without waiting).
    public func namespacesOnlyUsed(by pid: Int32) -> [(kind: NamespaceKind, inode: UInt64)] {
        guard let e = processes[pid], e.namespaces != 0 else { return [] }
        let set = namespaces[e.namespaces]
        return NamespaceKind.allCases.compactMap { kind in
            let key = NamespaceKey(type: kind, inode: set[kind])
            return set[kind] != 0 && namespaces.isOnlyUser(e.namespaces, of: key) ? (kind, set[kind]) : nil
        }
    }

    /// The namespaces known for `pid` (0 where unknown), nil when it is not tracked.
    public func namespaces(of pid: Int32) -> NamespaceSet? {
        processes[pid].map { namespaces[$0.namespaces] }
    }

    /// What /proc says a tracked process's namespaces are, learned without a record
    /// (at a scan, before a registration): kinds non-zero in `set` replace the known ones.
    public func learnNamespaces(pid: Int32, _ set: NamespaceSet) {
        guard let e = processes[pid] else { return }
        let old = namespaces[e.namespaces]
        var new = old
        for type in NamespaceKind.allCases where set[type] != 0 { new[type] = set[type] }
        guard new != old else { return }
        processes[pid]!.namespaces = namespaces.retain(new)
        if new.net != old.net {
            network.leave(old.net, object: e.container)
            network.join(new.net, object: e.container)
        }
        namespaces.release(e.namespaces, unused: &unusedScratch)
        emitDestroyed()
    }

    private func changeNamespaces(pid: Int32, operation: NamespaceOperation, changed: NamespaceSet) {
        guard let e = processes[pid] else { return }
        let old = namespaces[e.namespaces]
        var new = old
        for type in NamespaceKind.allCases where changed[type] != 0 { new[type] = changed[type] }
        guard new != old else { return }
        let type: AuditRecordType = operation == .setns ? .nsChange : .nsCreate
        for t in NamespaceKind.allCases where new[t] != old[t] {
            emitNamespaceMove(type, operation: operation, pid: pid, type: t, old: old[t], new: new[t])
        }
        // Retain the new set before releasing the old, so shared namespaces never look unused.
        let index = namespaces.retain(new)
        processes[pid]!.namespaces = index
        if new.net != old.net {
            network.leave(old.net, object: e.container)
            network.join(new.net, object: e.container)
        }
        namespaces.release(e.namespaces, unused: &unusedScratch)
        emitDestroyed()
    }

    private func emitNamespaceMove(
        _ recordType: AuditRecordType, operation: NamespaceOperation, pid: Int32, type: NamespaceKind,
        old: UInt64, new: UInt64
    ) {
        var text = RecordText()
        text.field("op", raw: operation.rawValue)
        text.field("pid", pid)
        text.field("contid", raw: chainText(of: pid))
        text.field("ns", raw: type.name)
        text.field("old", old)
        text.field("new", new)
        text.field("ns_dev", raw: namespaceDeviceText)
        if let id = namespaceIdentifier?(type, new) { text.field("nsid", id) }
        outbox.append(text.record(recordType))
    }

    /// `4,^2,^1`, or `-1` for a task without an ID (or not tracked).
    private func chainText(of pid: Int32) -> [UInt8] {
        guard let e = processes[pid], e.container >= 0 else { return Array("-1".utf8) }
        return objects[e.container].chainBytes
    }

    // MARK: Registration (SPEC §4, upstream §3 v10/v11 ladder)

    /// Sets the container ID of `target` (`echo ID > /proc/PID/audit_containerid`).
    ///
    /// `id` nil is an attempt to unset (`-1`, `unset`, 18446744073709551615).
    /// `new`: the request creates a container only, so a live ID is ENOTUNIQ
    /// whoever owns it (`contid set --new`, the OCI hook). `labels` go with a new
    /// container (an injection keeps the container's own). `topology` supplies the
    /// process facts of checks 0, 3, 4 and 5 (default: this registry's own table);
    /// the target must also be in this table. Writes one CONTAINER_OP record per
    /// attempt, NS_INFO on success when the target's namespaces are known, and
    /// CONTAINER_INFO when a new container has labels. Returns the target's new chain.
    @discardableResult
    public func register(
        writer: Writer, target: ProcessKey, id: ContainerID?, new: Bool = false, labels: ContainerLabels = ContainerLabels(),
        topology: (any ProcessTopology)? = nil
    ) throws(ContainerFailure) -> ContainerChain {
        let facts: any ProcessTopology = topology ?? processes
        let entry = processes.entry(target)
        let old = entry.flatMap { $0.container >= 0 ? $0.container : nil }

        func record(_ errno: ContainerErrno?) {
            var text = RecordText()
            text.field("op", raw: "set")
            text.field("opid", target.pid)
            text.field("contid", id: id)
            text.field("old-contid", raw: old.map { objects[$0].chainBytes } ?? Array("-1".utf8))
            outbox.append(text.attempt(by: writer, failing: errno, as: .containerOp))
        }
        func fail(_ errno: ContainerErrno, _ reason: String) -> ContainerFailure {
            record(errno)
            return ContainerFailure(errno, reason)
        }

        // 0: the target exists (the very process asked for, not a reuse of its pid).
        guard facts.isAlive(target), let entry else {
            throw fail(.ESRCH, "no process \(target.pid) (it exited, or its pid now names another process)")
        }
        // 1: unset is not a value anyone may write.
        guard let id else { throw fail(.EINVAL, ContainerID.unsetReason) }
        // 2: CAP_AUDIT_CONTROL, or capcontid delegated to the writer; and a requester fit to act for it.
        if let refusal = writer.requesterRefusal { throw fail(.EPERM, refusal) }
        guard writer.hasAuditControl || processes.entry(writer.process)?.capContID == true else {
            throw fail(
                .EPERM, "process \(writer.process.pid) lacks CAP_AUDIT_CONTROL and has no capcontid")
        }
        // 3: a container's first process, before it forks. Its threads are no refusal:
        // the ID belongs to the thread group (the table's entry for the tgid), so every
        // thread, and every thread started later, carries it (SPEC §4).
        var children = facts.childCount(of: target.pid)
        if let excluded = writer.excludingChild, excluded != target.pid,
            facts.parent(of: excluded) == target.pid, children > 0
        {
            children -= 1
        }
        if children > 0 {
            throw fail(
                .EBUSY,
                "process \(target.pid) has \(children) \(children == 1 ? "child" : "children"); register a container's first process before it forks"
            )
        }
        // 4: only for a descendant, never for oneself.
        if target.pid == writer.process.pid {
            throw fail(.EXDEV, "process \(target.pid) cannot set its own container ID")
        }
        guard facts.isDescendant(target.pid, of: writer.process) else {
            throw fail(.EXDEV, writer.notAncestorReason(of: target.pid, command: "set"))
        }
        // 5: an ID (set or inherited) may be replaced only by nesting: the writer is a
        // member of the target's current container (an orchestrator running inside it),
        // which holds whether or not the outer runtime still runs (SPEC §4).
        let writerContainer = processes.entry(writer.process).map { $0.container } ?? ProcessEntry.noContainer
        if let old, writerContainer != old {
            let owner = objects[old].owner
            let reason =
                owner == writer.process
                ? "process \(target.pid) already has container ID \(objects[old].chain), registered by process \(writer.process.pid) itself"
                : "process \(target.pid) already has container ID \(objects[old].chain); only a process of that container may nest another in it, and the writer, process \(writer.process.pid), is \(containerPhrase(writerContainer))"
            throw fail(.EEXIST, reason)
        }
        // 6: a live ID is joined only by its own orchestrator, and never by a request for a new container.
        let existing = objects.index(of: id)
        if let existing {
            if new {
                throw fail(
                    .ENOTUNIQ,
                    "container ID \(id) is in use (registered by process \(objects[existing].owner.pid)); a new container was asked for, and an ID in use is never joined by such a request")
            }
            if !isOrchestrator(of: existing, writer: writer, container: writerContainer) {
                throw fail(.ENOTUNIQ, "container ID \(id) is in use, owned by another orchestrator (\(orchestratorPhrase(existing)))")
            }
        }

        record(nil)
        let joined: Int32
        if let existing {
            joined = existing  // injection: the parent stays as it was
        } else {
            joined = objects.create(
                id: id, owner: writer.process, orchestrator: Self.orchestrator(of: writer), parent: writerContainer, labels: labels)
            objects[joined].firstPID = target.pid
        }
        let set = moveMember(target.pid, namespaces: entry.namespaces, into: joined, from: old)
        if !set.isEmpty {
            var text = RecordText()
            text.field("opid", target.pid)
            text.field("contid", id: id)
            text.field("ns_dev", raw: namespaceDeviceText)
            for type in NamespaceKind.allCases where set[type] != 0 {
                text.field(type.staticName, set[type])
            }
            outbox.append(text.record(.nsInfo))
        }
        if existing == nil, !labels.isEmpty {
            outbox.append(ContainerInfo(opid: target.pid, id: id, labels: labels).record)
        }
        return objects[joined].chain
    }

    /// The orchestrator a writer is, or nil when its executable is unknown (then only
    /// the process itself counts as the owner).
    static func orchestrator(of writer: Writer) -> Orchestrator? {
        writer.exe.isEmpty || writer.exe == Array("?".utf8) ? nil : Orchestrator(uid: writer.uid, exe: writer.exe)
    }

    /// Whether `writer`, in container `container`, is the orchestrator that created
    /// object `index`: same uid, same executable, same own chain (SPEC §4), alive or not.
    private func isOrchestrator(of index: Int32, writer: Writer, container: Int32) -> Bool {
        let o = objects[index]
        guard let orchestrator = o.orchestrator, let asking = Self.orchestrator(of: writer) else {
            return o.owner == writer.process
        }
        return orchestrator == asking && o.parent == container
    }

    private func orchestratorPhrase(_ index: Int32) -> String {
        let o = objects[index]
        guard let orchestrator = o.orchestrator else { return "process \(o.owner.pid)" }
        let exe = String(decoding: orchestrator.exe.map { $0 < 0x20 || $0 == 0x7F ? UInt8(ascii: "?") : $0 }, as: UTF8.self)
        return "process \(o.owner.pid): uid \(orchestrator.uid), \(exe), \(containerPhrase(o.parent))"
    }

    /// `in container 7,^2` or `in no container`.
    private func containerPhrase(_ index: Int32) -> String {
        index >= 0 ? "in container \(objects[index].chain)" : "in no container"
    }

    /// Sets capcontid on `target` (`/proc/PID/audit_capcontainerid`, upstream §5):
    /// the right to register IDs without CAP_AUDIT_CONTROL. Not inherited.
    /// Writes one SET_CAPCONTID record per attempt.
    public func setCapContID(
        writer: Writer, target: ProcessKey, value: Bool, topology: (any ProcessTopology)? = nil
    ) throws(ContainerFailure) {
        let facts: any ProcessTopology = topology ?? processes
        let entry = processes.entry(target)
        func record(_ errno: ContainerErrno?) {
            var text = RecordText()
            text.field("opid", target.pid)
            text.field("capcontid", value ? 1 : 0)
            text.field("old-capcontid", entry?.capContID == true ? 1 : 0)
            outbox.append(text.attempt(by: writer, failing: errno, as: .setCapContID))
        }
        func fail(_ errno: ContainerErrno, _ reason: String) -> ContainerFailure {
            record(errno)
            return ContainerFailure(errno, reason)
        }
        guard facts.isAlive(target), entry != nil else {
            throw fail(.ESRCH, "no process \(target.pid) (it exited, or its pid now names another process)")
        }
        if target.pid == writer.process.pid {
            throw fail(.EXDEV, "process \(target.pid) cannot set its own capcontid")
        }
        guard facts.isDescendant(target.pid, of: writer.process) else {
            throw fail(.EXDEV, writer.notAncestorReason(of: target.pid, command: "capcontid"))
        }
        if let refusal = writer.requesterRefusal { throw fail(.EPERM, refusal) }
        guard writer.hasAuditControl || processes.entry(writer.process)?.capContID == true else {
            throw fail(
                .EPERM, "process \(writer.process.pid) lacks CAP_AUDIT_CONTROL and has no capcontid")
        }
        record(nil)
        processes[target.pid]!.capContID = value
    }

    // MARK: Joining by namespaces (SPEC §4)

    /// Records that the live container `id` has a pid namespace of its own whose pid 1
    /// is its first process (the caller read /proc/PID/ns/pid and NSpid after the
    /// registration): a process that enters that namespace joins the container.
    /// False when `id` is not live or the namespace is another container's already.
    @discardableResult
    public func setOwnPIDNamespace(_ inode: UInt64, of id: ContainerID) -> Bool {
        guard inode != 0, let i = objects.index(of: id) else { return false }
        if let other = pidNamespaceOwners[inode], other != i, objects[other].isLive { return false }
        objects[i].pidNamespace = inode
        pidNamespaceOwners[inode] = i
        return true
    }

    /// The exit of `pid`'s thread-group leader was seen (before it is applied, which waits
    /// for the exit's late records): when it is a container's pid 1, its pid namespace is
    /// dying now, and the kernel hands the same inode to the next namespace at once (three
    /// `runc run` in a row get the same `pid:[...]`), so the namespace stops naming the
    /// container here, not when the held exit is applied. (A leader thread that exits while
    /// its threads go on leaves the namespace alive, and loses the container its joins.)
    public func processExited(_ pid: Int32) {
        guard let e = processes[pid], e.container >= 0 else { return }
        let o = objects[e.container]
        if o.pidNamespace != 0, o.firstPID == pid, pidNamespaceOwners[o.pidNamespace] == e.container {
            pidNamespaceOwners[o.pidNamespace] = nil
        }
    }

    /// Whether any live container has a pid namespace of its own: only then does a
    /// fork need its pid namespace read (the host's fork cost stays as it was otherwise).
    @inline(__always)
    public var hasOwnPIDNamespaces: Bool { !pidNamespaceOwners.isEmpty }

    /// The container whose own pid namespace this is.
    public func container(ownPIDNamespace inode: UInt64) -> ContainerID? {
        pidNamespaceOwners[inode].map { objects[$0].id }
    }

    /// `process` runs in pid namespace `inode` (read when its FORK was seen). When that
    /// is a container's own pid namespace and the process is not in that container
    /// (nor nested in it), it entered it (setns, as `runc exec` and `nsenter -p` do):
    /// it joins the container, and an `op=join` CONTAINER_OP names it (`joiner`: its
    /// uid, auid, ses, comm, exe). Returns the new chain, or nil when nothing changed.
    @discardableResult
    public func joinIfEntered(_ process: ProcessKey, pidNamespace inode: UInt64, joiner: Writer) -> ContainerChain? {
        guard let target = pidNamespaceOwners[inode], let entry = processes.entry(process) else { return nil }
        let old = entry.container >= 0 ? entry.container : nil
        if let old, objects[old].chain.ids.contains(objects[target].id) { return nil }
        var text = RecordText()
        text.field("op", raw: "join")
        text.field("opid", process.pid)
        text.field("contid", id: objects[target].id)
        text.field("old-contid", raw: old.map { objects[$0].chainBytes } ?? Array("-1".utf8))
        outbox.append(text.attempt(by: joiner, failing: nil, as: .containerOp))
        moveMember(process.pid, namespaces: entry.namespaces, into: target, from: old)
        return objects[target].chain
    }

    // MARK: Registrations read from a trail (offline replay)

    /// Applies a successful registration found in a log (a CONTAINER_OP with `res=1`):
    /// the outcome the daemon already decided, so no check is repeated and no record
    /// is written. `writer` and `target` must be in the table (report them with
    /// `.discovered` first). A live ID joins the target to it (injection), else a new
    /// object is created, owned by the writer and nested in the writer's container.
    /// `uid` and `exe`: the record's writer, so that a later check knows its orchestrator.
    public func applyRecordedRegistration(
        writer: Int32, target: Int32, id: ContainerID, uid: UInt32? = nil, exe: [UInt8]? = nil
    ) {
        guard let entry = processes[target] else { return }
        let writerEntry = processes[writer]
        let old = entry.container >= 0 ? entry.container : nil
        let joined: Int32
        if let existing = objects.index(of: id) {
            if existing == old { return }
            joined = existing
        } else {
            let owner = ProcessKey(pid: writer, start: writerEntry?.start ?? 0)
            let orchestrator = uid.flatMap { u in exe.map { Orchestrator(uid: u, exe: $0) } }
            joined = objects.create(
                id: id, owner: owner, orchestrator: orchestrator, parent: writerEntry?.container ?? ProcessEntry.noContainer)
            objects[joined].firstPID = target
        }
        moveMember(target, namespaces: entry.namespaces, into: joined, from: old)
    }

    /// Sets the labels of the live container `id`, as a CONTAINER_INFO record found in
    /// a log gives them (see `ContainerInfo.parse`); false when no such container lives.
    @discardableResult
    public func applyRecordedLabels(id: ContainerID, labels: ContainerLabels) -> Bool {
        guard let i = objects.index(of: id) else { return false }
        objects[i].labels = labels
        return true
    }

    /// Applies a join found in a log (a CONTAINER_OP `op=join` with `res=1`, SPEC §4):
    /// `target` (in the table) joins the live container `id`, leaving the one it was in;
    /// nothing is written. Nothing changes when `id` is not live.
    public func applyRecordedJoin(target: Int32, id: ContainerID) {
        guard let entry = processes[target], let joined = objects.index(of: id) else { return }
        let old = entry.container >= 0 ? entry.container : nil
        guard old != joined else { return }
        moveMember(target, namespaces: entry.namespaces, into: joined, from: old)
    }

    /// Applies a successful capcontid change found in a log (SET_CAPCONTID with `res=1`).
    public func applyRecordedCapContID(target: Int32, value: Bool) {
        processes[target]?.capContID = value
    }

    // MARK: Questions (annotation is the hot path)

    /// The chain of the process `pid` (unset when it has none or is not tracked).
    public func chain(of pid: Int32) -> ContainerChain {
        guard let e = processes[pid], e.container >= 0 else { return .unset }
        return objects[e.container].chain
    }

    /// The printed chain of `pid` (`4,^2,^1`), or nil when it has no ID.
    @inline(__always)
    public func chainBytes(of pid: Int32) -> [UInt8]? {
        guard let e = processes.entries[pid], e.container >= 0 else { return nil }
        return objects[e.container].chainBytes
    }

    /// Appends the CONTAINER_ID body `record=N contid=<chain>` for the task `pid`;
    /// false (nothing appended) when the task has no ID.
    @inline(__always)
    public func appendAnnotation(record: Int, pid: Int32, to out: inout [UInt8]) -> Bool {
        guard let e = processes.entries[pid], e.container >= 0 else { return false }
        appendAnnotationPrefix(record: record, to: &out)
        objects.objects[Int(e.container)].chainBytes.withUnsafeBufferPointer { out.append(contentsOf: $0) }
        return true
    }

    /// The NETFILTER_PKT annotation chains of a network namespace, newest first
    /// (`123452,123451`, `2,^1,3,^1`), or nil when no container has a task in it.
    public func networkChainBytes(netns: UInt64) -> [UInt8]? {
        network.text(netns, objects: objects)
    }

    /// Appends `record=N contid=<chains>` for a packet in `netns`; false when no container is there.
    public func appendNetworkAnnotation(record: Int, netns: UInt64, to out: inout [UInt8]) -> Bool {
        guard let text = network.text(netns, objects: objects) else { return false }
        appendAnnotationPrefix(record: record, to: &out)
        out.append(contentsOf: text)
        return true
    }

    @inline(__always)
    private func appendAnnotationPrefix(record: Int, to out: inout [UInt8]) {
        let prefix: StaticString = "record="
        prefix.withUTF8Buffer { out.append(contentsOf: $0) }
        appendDecimal(record, to: &out)
        let field: StaticString = " contid="
        field.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    /// The containers with live tasks in `netns`, newest first.
    public func networkChains(netns: UInt64) -> [ContainerChain] {
        network.members(of: netns).map { objects[$0.object].chain }
    }

    public var processCount: Int { processes.count }
    public var containerCount: Int { objects.liveCount }

    /// What the registry knows of one process (for `contid get`, `contid ps`).
    public struct ProcessState: Hashable, Sendable {
        public var process: ProcessKey
        public var parent: Int32
        public var chain: ContainerChain
        public var capContID: Bool
        public var children: Int
        public var threads: Int
        public var namespaces: NamespaceSet
    }

    public func process(_ pid: Int32) -> ProcessState? {
        guard let e = processes[pid] else { return nil }
        return ProcessState(
            process: ProcessKey(pid: pid, start: e.start), parent: processes.parent(of: pid) ?? e.parent,
            chain: chain(of: pid), capContID: e.capContID, children: Int(e.children), threads: Int(e.threads),
            namespaces: namespaces[e.namespaces])
    }

    /// Every tracked process, by pid.
    public func allProcesses() -> [ProcessState] {
        processes.entries.pids.sorted().compactMap { process($0) }
    }

    /// A live container object.
    public struct ContainerState: Hashable, Sendable {
        public var id: ContainerID
        public var owner: ProcessKey
        public var chain: ContainerChain
        /// Live processes whose innermost container this is.
        public var members: Int
        /// Live containers nested directly in this one.
        public var nested: Int
        /// Creation order, increasing.
        public var creation: UInt64
        /// What its orchestrator said about it at registration.
        public var labels: ContainerLabels
    }

    public func container(_ id: ContainerID) -> ContainerState? {
        guard let i = objects.index(of: id) else { return nil }
        let o = objects[i]
        return ContainerState(
            id: o.id, owner: o.owner, chain: o.chain, members: Int(o.members), nested: Int(o.nested),
            creation: o.creation, labels: o.labels)
    }

    /// The labels of the live container `id` (empty when it has none or is not live).
    public func labels(of id: ContainerID) -> ContainerLabels {
        objects.index(of: id).map { objects[$0].labels } ?? ContainerLabels()
    }

    /// The CONTAINER_INFO records of every live container that has labels, in creation
    /// order (written again at the top of each new log file, so each file is self-contained).
    public func containerInfoRecords() -> [ContainerRecord] {
        allContainers().compactMap { c in
            guard let i = objects.index(of: c.id), !c.labels.isEmpty else { return nil }
            return ContainerInfo(opid: objects[i].firstPID, id: c.id, labels: c.labels).record
        }
    }

    /// Every live container, in creation order.
    public func allContainers() -> [ContainerState] {
        objects.indexOf.keys.compactMap { container($0) }.sorted { $0.creation < $1.creation }
    }
}
