import AuditCodec

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The registry on disk, so it survives a restart of contidd (SPEC §5): a
// versioned JSON document. On restore, live processes keep their containers and
// dead ones are removed as exits, producing the drop records they would have.

/// A snapshot that cannot be restored: what was wrong with it.
public struct SnapshotError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    public init(reason: String) { self.reason = reason }
    public var description: String { "registry snapshot: \(reason)" }
}

extension ContainerID: Codable {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try ContainerID(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

struct RegistrySnapshot: Codable {
    static let currentVersion = 1

    struct Container: Codable {
        var slot: Int32
        var id: ContainerID
        var owner: ProcessKey
        var parent: Int32
        var creation: UInt64
        // Absent in snapshots written before owners were orchestrators and containers
        // had labels (such a container is injected into by its owner process only).
        /// The orchestrator's uid and executable (hex, any byte kept).
        var orchestratorUID: UInt32?
        var orchestratorExe: String?
        /// `k=v,k=v`.
        var labels: String?
        var firstPID: Int32?
        /// Its own pid namespace (pid 1 is its first process), where entering joins it.
        var pidNamespace: UInt64?
    }

    struct Process: Codable {
        var pid: Int32
        var start: UInt64
        var parent: Int32
        var parentStart: UInt64
        var container: Int32
        var threads: Int32
        var capContID: Bool
        var namespaces: NamespaceSet?
    }

    struct Network: Codable {
        var netns: UInt64
        /// Container slots, newest first.
        var containers: [Int32]
    }

    var version: Int
    var namespaceDevice: [UInt32]
    var nextCreation: UInt64
    var containers: [Container]
    var processes: [Process]
    var networks: [Network]
}

extension ContainerRegistry {
    /// The registry as bytes (versioned JSON).
    public func snapshot() -> [UInt8] {
        let containers = objects.indexOf.values.sorted().map { i in
            let o = objects[i]
            return RegistrySnapshot.Container(
                slot: i, id: o.id, owner: o.owner, parent: o.parent, creation: o.creation,
                orchestratorUID: o.orchestrator?.uid, orchestratorExe: o.orchestrator.map { AuditText.hex($0.exe) },
                labels: o.labels.isEmpty ? nil : o.labels.encoded, firstPID: o.firstPID == 0 ? nil : o.firstPID,
                pidNamespace: o.pidNamespace == 0 ? nil : o.pidNamespace)
        }
        let procs = processes.entries.sorted { $0.key < $1.key }.map { pid, e in
            let set = namespaces[e.namespaces]
            return RegistrySnapshot.Process(
                pid: pid, start: e.start, parent: e.parent, parentStart: e.parentStart, container: e.container,
                threads: e.threads, capContID: e.capContID, namespaces: set.isEmpty ? nil : set)
        }
        let networks = network.byNamespace.keys.sorted().map { netns in
            RegistrySnapshot.Network(netns: netns, containers: network.members(of: netns).map(\.object))
        }
        let snapshot = RegistrySnapshot(
            version: RegistrySnapshot.currentVersion,
            namespaceDevice: [namespaceDevice.major, namespaceDevice.minor],
            nextCreation: objects.nextCreation, containers: containers, processes: procs, networks: networks)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // Encoding plain structs of integers and strings cannot fail.
        return Array(try! encoder.encode(snapshot))
    }

    /// Rebuilds a registry from `snapshot()` bytes. Every process for which
    /// `isAlive` is true keeps its container; the others are removed as exits
    /// (counted in `diedUnseen`), so objects that lose their last member are
    /// dropped and their drop records wait in the new registry's outbox.
    public static func restore(
        from bytes: [UInt8], isAlive: (ProcessKey) -> Bool
    ) throws(SnapshotError) -> ContainerRegistry {
        let s: RegistrySnapshot
        do {
            s = try JSONDecoder().decode(RegistrySnapshot.self, from: Data(bytes))
        } catch {
            throw SnapshotError(reason: "unreadable: \(error)")
        }
        guard s.version == RegistrySnapshot.currentVersion else {
            throw SnapshotError(reason: "version \(s.version), this contidd reads version \(RegistrySnapshot.currentVersion)")
        }
        guard s.namespaceDevice.count == 2 else { throw SnapshotError(reason: "namespaceDevice needs 2 numbers") }
        let registry = ContainerRegistry(namespaceDevice: (s.namespaceDevice[0], s.namespaceDevice[1]))
        try registry.load(s)
        for p in s.processes where !isAlive(ProcessKey(pid: p.pid, start: p.start)) {
            registry.apply(.exited(ProcessKey(pid: p.pid, start: p.start)))
            registry.diedUnseen += 1
        }
        return registry
    }

    private func load(_ s: RegistrySnapshot) throws(SnapshotError) {
        let slots = Set(s.containers.map(\.slot))
        guard slots.count == s.containers.count, slots.allSatisfy({ $0 >= 0 }) else {
            throw SnapshotError(reason: "container slots are negative or repeated")
        }
        // Parents are always older than their nested containers: place them first.
        for c in s.containers.sorted(by: { $0.creation < $1.creation }) {
            var chain = ContainerChain([c.id])
            if c.parent >= 0 {
                guard slots.contains(c.parent), objects.objects.indices.contains(Int(c.parent)),
                    objects[c.parent].isLive, objects[c.parent].creation < c.creation
                else { throw SnapshotError(reason: "container \(c.id) has a parent that is not an older container") }
                chain.ids.append(contentsOf: objects[c.parent].chain.ids)
                objects[c.parent].nested += 1
            }
            guard objects.index(of: c.id) == nil else { throw SnapshotError(reason: "container \(c.id) appears twice") }
            var orchestrator: Orchestrator?
            if let uid = c.orchestratorUID, let hex = c.orchestratorExe {
                guard let exe = AuditText.unhex(Array(hex.utf8)) else {
                    throw SnapshotError(reason: "container \(c.id) has an orchestratorExe that is not hex")
                }
                orchestrator = Orchestrator(uid: uid, exe: exe)
            }
            let labels: ContainerLabels
            do { labels = try ContainerLabels(parsing: c.labels ?? "") } catch {
                throw SnapshotError(reason: "container \(c.id) has labels that do not read: \(error.reason)")
            }
            objects.place(
                ContainerObject(
                    id: c.id, owner: c.owner, orchestrator: orchestrator, labels: labels, firstPID: c.firstPID ?? 0,
                    parent: c.parent, members: 0, nested: 0, creation: c.creation,
                    chain: chain, chainBytes: chain.bytes, isLive: true),
                at: c.slot)
            if let ns = c.pidNamespace, ns != 0 {
                objects[c.slot].pidNamespace = ns
                pidNamespaceOwners[ns] = c.slot
            }
        }
        objects.nextCreation = max(objects.nextCreation, s.nextCreation)

        var counts: [UInt64: [Int32: Int32]] = [:]
        for p in s.processes {
            guard processes[p.pid] == nil else { throw SnapshotError(reason: "process \(p.pid) appears twice") }
            guard p.container < 0 || slots.contains(p.container) else {
                throw SnapshotError(reason: "process \(p.pid) names container slot \(p.container), which is not in the snapshot")
            }
            let set = p.namespaces ?? NamespaceSet()
            processes[p.pid] = ProcessEntry(
                start: p.start, parentStart: p.parentStart, parent: p.parent,
                container: p.container < 0 ? ProcessEntry.noContainer : p.container, children: 0,
                threads: max(1, p.threads), namespaces: namespaces.retain(set), capContID: p.capContID)
            if p.container >= 0 {
                objects[p.container].members += 1
                if set.net != 0 { counts[set.net, default: [:]][p.container, default: 0] += 1 }
            }
        }
        for (_, e) in processes.entries {
            if let parent = processes.liveParent(of: e), processes[parent] != nil { processes[parent]!.children += 1 }
        }
        let saved = Dictionary(s.networks.map { ($0.netns, $0.containers) }, uniquingKeysWith: { a, _ in a })
        for (netns, perObject) in counts {
            var order = (saved[netns] ?? []).filter { perObject[$0] != nil }
            order += perObject.keys.filter { !order.contains($0) }.sorted {
                objects[$0].creation > objects[$1].creation
            }
            network.setMembers(netns, order.map { NetworkNamespaceMembership.Member(object: $0, tasks: perObject[$0]!) })
        }
        for c in s.containers where objects[c.slot].members == 0 && objects[c.slot].nested == 0 {
            throw SnapshotError(reason: "container \(c.id) has no member and no nested container")
        }
    }
}
