import ContainerEngine
import PropertyBased
import Testing

/// A reference model of the registry, as plain as it can be: each process holds
/// its whole chain; an ID is live while some live process's chain contains it.
struct ReferenceModel {
    struct Process {
        var start: UInt64
        var parent: Int32
        var parentStart: UInt64
        var chain: [ContainerID]
        var threads = 1
        var capContID = false
        var net: UInt64
    }

    var processes: [Int32: Process] = [1: Process(start: 1, parent: 0, parentStart: 0, chain: [], net: 10)]
    var owners: [ContainerID: ProcessKey] = [:]
    var objectChains: [ContainerID: [ContainerID]] = [:]
    /// The owner's own chain at registration.
    var ownerChains: [ContainerID: [ContainerID]] = [:]

    func key(_ pid: Int32) -> ProcessKey { ProcessKey(pid: pid, start: processes[pid]!.start) }
    func isAlive(_ k: ProcessKey) -> Bool { processes[k.pid]?.start == k.start }

    /// The parent while it lives, else init (the reaper).
    func parent(of pid: Int32) -> Int32? {
        guard let p = processes[pid] else { return nil }
        if let pp = processes[p.parent], pp.start == p.parentStart { return p.parent }
        return pid == 1 ? nil : 1
    }

    func children(of pid: Int32) -> Int {
        guard let me = processes[pid] else { return 0 }
        return processes.values.filter { $0.parent == pid && $0.parentStart == me.start }.count
    }

    func isDescendant(_ pid: Int32, of ancestor: ProcessKey) -> Bool {
        guard isAlive(ancestor) else { return false }
        var current = pid
        while let p = parent(of: current), p > 0 {
            if p == ancestor.pid { return true }
            current = p
        }
        return false
    }

    var liveIDs: Set<ContainerID> { Set(processes.values.flatMap(\.chain)) }

    /// Forgets objects no live chain contains; returns them.
    mutating func collect() -> Set<ContainerID> {
        let live = liveIDs
        let dead = Set(owners.keys).subtracting(live)
        for id in dead {
            owners[id] = nil
            objectChains[id] = nil
            ownerChains[id] = nil
        }
        return dead
    }

    mutating func register(writer: ProcessKey, cap: Bool, target: ProcessKey, id: ContainerID?) -> ContainerErrno? {
        guard let t = processes[target.pid], t.start == target.start else { return .ESRCH }
        guard let id else { return .EINVAL }
        guard cap || processes[writer.pid]!.capContID else { return .EPERM }
        if children(of: target.pid) > 0 { return .EBUSY }  // threads join (SPEC §4)
        if target.pid == writer.pid || !isDescendant(target.pid, of: writer) { return .EXDEV }
        let writerChain = processes[writer.pid]!.chain
        // Nesting: the writer is a member of the target's container (SPEC §4).
        if !t.chain.isEmpty, t.chain != writerChain { return .EEXIST }
        if owners[id] != nil {
            // One orchestrator (uid and executable are the same here): the same own chain.
            if ownerChains[id]! != writerChain { return .ENOTUNIQ }
        } else {
            ownerChains[id] = writerChain
            owners[id] = writer
            objectChains[id] = [id] + processes[writer.pid]!.chain
        }
        processes[target.pid]!.chain = objectChains[id]!
        return nil
    }

    mutating func setCapContID(writer: ProcessKey, cap: Bool, target: ProcessKey, value: Bool) -> ContainerErrno? {
        guard isAlive(target) else { return .ESRCH }
        if target.pid == writer.pid || !isDescendant(target.pid, of: writer) { return .EXDEV }
        guard cap || processes[writer.pid]!.capContID else { return .EPERM }
        processes[target.pid]!.capContID = value
        return nil
    }
}

/// Model-based checks over random process trees, forks, threads, exits, PID
/// reuse, namespace moves and registration sequences.
@Suite struct RegistryPropertyTests {
    static let steps = Gen.uint32(in: 0...UInt32.max).array(of: 1...160)

    @Test func registryAgreesWithTheReferenceModel() async {
        await propertyCheck(count: 300, input: Self.steps) { steps in
            var model = ReferenceModel()
            let registry = ContainerRegistry()
            registry.apply(.discovered(ProcessKey(pid: 1, start: 1), parent: 0, namespaces: NamespaceSet([.net: 10])))
            var clock: UInt64 = 10
            var tid: Int32 = 100_000

            for x in steps {
                let alive = model.processes.keys.sorted()
                func pick(_ shift: UInt32) -> Int32 { alive[Int((x >> shift) % UInt32(alive.count))] }
                let before = model.liveIDs
                var expectedOps = 0
                var expectedCaps = 0
                var expectedErrno: ContainerErrno?? = .none  // outer nil: no request this step

                switch x % 12 {
                case 0, 1, 2:
                    let parent = pick(4)
                    let child = Int32(2 + (x >> 12) % 48)
                    guard child != parent else { continue }
                    clock += 1
                    if model.processes[child] != nil { model.processes[child] = nil }  // died unseen
                    let p = model.processes[parent]!
                    model.processes[child] = .init(
                        start: clock, parent: parent, parentStart: p.start, chain: p.chain, net: p.net)
                    registry.apply(.created(parent: parent, child: ProcessKey(pid: child, start: clock)))
                case 3:
                    let pid = pick(4)
                    model.processes[pid]!.threads += 1
                    tid += 1
                    registry.apply(.created(parent: pid, child: ProcessKey(pid: tid, start: clock), kind: .thread))
                case 4:
                    let pid = pick(4)
                    model.processes[pid]!.threads = max(1, model.processes[pid]!.threads - 1)
                    registry.apply(.threadExited(process: pid))
                case 5, 6:
                    let pid = pick(4)
                    guard pid != 1 else { continue }
                    let k = model.key(pid)
                    model.processes[pid] = nil
                    registry.apply(.exited(k))
                case 7, 8, 9:
                    let writer = model.key(pick(4))
                    // Mostly a childless child of the writer, as orchestrators pick, so that nesting happens often.
                    let children = alive.filter { model.parent(of: $0) == writer.pid && model.children(of: $0) == 0 }
                    var target = model.key(
                        (x >> 28) & 3 != 0 && !children.isEmpty
                            ? children[Int((x >> 12) % UInt32(children.count))] : pick(12))
                    if (x >> 26) & 15 == 0 { target.start += 1 }
                    let n = (x >> 20) % 8
                    let id: ContainerID? = n == 0 ? nil : ContainerID(UInt64(n))
                    let cap = (x >> 23) & 7 != 0
                    let w = Writer(process: writer, hasAuditControl: cap, comm: "runc", exe: "/usr/bin/runc")
                    expectedErrno = .some(model.register(writer: writer, cap: cap, target: target, id: id))
                    expectedOps = 1
                    var got: ContainerErrno?
                    do throws(ContainerFailure) { try registry.register(writer: w, target: target, id: id) } catch { got = error.errno }
                    #expect(got == expectedErrno!, "register \(id.map { "\($0)" } ?? "unset") on \(target) by \(writer)")
                case 10:
                    let writer = model.key(pick(4))
                    let target = model.key(pick(12))
                    let cap = (x >> 24) & 1 != 0
                    let value = (x >> 25) & 1 != 0
                    let w = Writer(process: writer, hasAuditControl: cap, comm: "runc", exe: "/usr/bin/runc")
                    let want = model.setCapContID(writer: writer, cap: cap, target: target, value: value)
                    expectedCaps = 1
                    var got: ContainerErrno?
                    do throws(ContainerFailure) { try registry.setCapContID(writer: w, target: target, value: value) } catch { got = error.errno }
                    #expect(got == want)
                default:
                    let pid = pick(4)
                    let net = UInt64(10 + (x >> 12) % 3)
                    model.processes[pid]!.net = net
                    registry.apply(.namespacesChanged(pid: pid, operation: .setns, namespaces: NamespaceSet([.net: net])))
                }

                // Exactly one record per attempt; drops exactly for the objects that lost their last member.
                let dropped = model.collect()
                #expect(dropped == before.subtracting(model.liveIDs))
                let records = registry.takeRecords()
                let ops = records.filter { $0.type == .containerOp && $0.body.hasPrefix("op=set ") }
                #expect(ops.count == expectedOps)
                if let want = expectedErrno, let op = ops.first {
                    #expect(op.body.hasSuffix(want.map { "res=0 errno=\($0.name)" } ?? "res=1"))
                }
                #expect(records.filter { $0.type == .setCapContID }.count == expectedCaps)
                let drops = records.filter { $0.type == .containerOp && $0.body.hasPrefix("op=drop ") }
                let droppedChains = drops.compactMap { r in
                    r.body.split(separator: " ").first { $0.hasPrefix("old-contid=") }.map {
                        try? ContainerChain(parsing: $0.dropFirst("old-contid=".count))
                    } ?? nil
                }
                #expect(droppedChains.count == drops.count)
                #expect(droppedChains.count == dropped.count)
                #expect(Set(droppedChains.compactMap(\.innermost)) == dropped)
            }

            // Every live task's chain is the model's; live IDs are unique and owned as modelled.
            for (pid, p) in model.processes {
                #expect(registry.chain(of: pid).ids == p.chain, "chain of \(pid)")
                #expect(registry.process(pid)?.children == model.children(of: pid), "children of \(pid)")
                #expect(registry.process(pid)?.threads == p.threads, "threads of \(pid)")
            }
            #expect(registry.processCount == model.processes.count)
            let containers = registry.allContainers()
            #expect(containers.count == model.owners.count)
            #expect(Dictionary(uniqueKeysWithValues: containers.map { ($0.id, $0.owner) }) == model.owners)
            for net: UInt64 in 10...12 {
                let want = Set(model.processes.values.filter { $0.net == net && !$0.chain.isEmpty }.map { ContainerChain($0.chain) })
                #expect(Set(registry.networkChains(netns: net)) == want)
                #expect(registry.networkChains(netns: net).count == want.count)
            }

            // A restart keeps the live processes' containers and drops what only the dead kept alive.
            let survivors = model.processes.filter { $0.key % 3 != 0 || $0.key == 1 }
            let restored: ContainerRegistry
            do throws(SnapshotError) {
                restored = try ContainerRegistry.restore(from: registry.snapshot()) {
                    survivors[$0.pid]?.start == $0.start
                }
            } catch {
                Issue.record("restore failed: \(error)")
                return
            }
            for (pid, p) in survivors { #expect(restored.chain(of: pid).ids == p.chain) }
            #expect(Set(restored.allContainers().map(\.id)) == Set(survivors.values.flatMap(\.chain)))
            let drops = restored.takeRecords().filter { $0.body.hasPrefix("op=drop ") }.count
            #expect(drops == containers.count - restored.containerCount)
        }
    }
}
