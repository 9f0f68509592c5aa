import AuditCodec
import ContainerEngine
import Glibc
import LinuxAudit
import SystemPackage

// Namespace destruction (SPEC §6 NS_DESTROY, facts §6): the registry says when a
// namespace lost its last known user; a bind mount (`ip netns add`) or an open
// descriptor may keep it alive. Each namespace gets an nsfs file handle when it is
// first seen (it does not pin the namespace); a candidate is reported destroyed
// when open_by_handle_at answers ESTALE. The check's cost grows with the number
// of candidates, never with the number of processes.

/// What the kernel says about namespaces, behind a protocol so tests substitute it.
protocol NamespaceProbe {
    /// A handle and the 64-bit id of `pid`'s namespace of `kind` (nil where the kernel
    /// has neither); throws when the process is gone.
    func identify(pid: Int32, _ kind: NamespaceKind) throws -> (handle: NamespaceHandle?, nsid: UInt64?)
    func liveness(_ handle: NamespaceHandle) -> NamespaceHandle.Liveness
}

final class KernelNamespaceProbe: NamespaceProbe {
    /// One nsfs descriptor per kind, opened at first use and kept: a check is then one
    /// open_by_handle_at and one close.
    private var mounts: [NamespaceKind: FileDescriptor] = [:]

    deinit { for fd in mounts.values { try? fd.close() } }

    func identify(pid: Int32, _ kind: NamespaceKind) throws -> (handle: NamespaceHandle?, nsid: UInt64?) {
        // One open: on 6.18 the nsfs handle carries the id (u64 ns_id, u32 type, u32 inode).
        let handle = try NamespaceHandle.of(pid: pid, kind)
        if let handle, let nsid = handle.nsid { return (handle, nsid) }
        return (handle, (try? NamespaceID.uniqueID(pid: pid, kind)) ?? nil)
    }

    func liveness(_ handle: NamespaceHandle) -> NamespaceHandle.Liveness {
        if mounts[handle.kind] == nil {
            do { mounts[handle.kind] = try NamespaceHandle.mountDescriptor(handle.kind) } catch {
                return .unknown((error as? LinuxAuditError)?.errno ?? .ioError)
            }
        }
        return handle.liveness(mount: mounts[handle.kind]!)
    }
}

final class NamespaceWatch {
    struct Known {
        var handle: NamespaceHandle?
        var nsid: UInt64?
    }

    private struct Key: Hashable {
        var kind: NamespaceKind
        var inode: UInt64
    }

    private let registry: ContainerRegistry
    private let probe: NamespaceProbe
    private var known: [Key: Known] = [:]
    /// Namespaces without a known user, waiting for their handle to go stale, with
    /// how many times each was found alive: after `steadyAfter` probes, one is probed
    /// every `steadyEvery` checks only (every second at the daemon's 250 ms), so many
    /// long-lived ones (bind-mounted netns) cost a quarter as much; after
    /// `longLivedAfter` probes (about 13 s), every `longLivedEvery` checks (2 s): 1,000
    /// bind-mounted namespaces then cost about half a percent of a core (Benchmarks/ns.sh).
    private var candidates: [(key: Key, alive: Int)] = []
    private var rounds = 0
    static let steadyAfter = 4
    static let steadyEvery = 4
    static let longLivedAfter = 16
    static let longLivedEvery = 8
    /// Namespaces whose last known user's EXIT was seen but not yet applied (exits are
    /// held for the grace period): checked until `checks` runs out; one already gone
    /// is reported then, and not again when its last user is released.
    private var exiting: [Key: Int] = [:]
    private var reported: Set<Key> = []
    /// Liveness probes made (one open_by_handle_at each).
    private(set) var probes = 0

    private(set) var destroyed = 0
    /// Candidates that could not be confirmed (no handle): reported when unused, as
    /// without a handle nothing better is known.
    private(set) var unconfirmed = 0

    init(registry: ContainerRegistry, probe: NamespaceProbe = KernelNamespaceProbe()) {
        self.registry = registry
        self.probe = probe
        registry.confirmsNamespaceDestruction = true
        registry.namespaceIdentifier = { [unowned self] kind, inode in known[Key(kind: kind, inode: inode)]?.nsid }
    }

    var knownCount: Int { known.count }
    var candidateCount: Int { candidates.count }

    /// Names every namespace of `pid` the first time it is seen (a handle and an id:
    /// two opens per new namespace, none for one seen before).
    func learn(pid: Int32, _ set: NamespaceSet) {
        for kind in NamespaceKind.allCases where set[kind] != 0 {
            let key = Key(kind: kind, inode: set[kind])
            guard known[key] == nil else { continue }
            guard let (handle, nsid) = try? probe.identify(pid: pid, kind) else { continue }
            // The process may have moved between the stat and the open: keep only a
            // handle of the namespace that was read (its inode is in the handle).
            if let handle, let inode = handle.inode, inode != key.inode { continue }
            known[key] = Known(handle: handle, nsid: nsid)
        }
    }

    /// The last known user of these namespaces exited (its EXIT is held back).
    func lastUserExited(_ keys: [(kind: NamespaceKind, inode: UInt64)]) {
        for k in keys where known[Key(kind: k.kind, inode: k.inode)]?.handle != nil {
            exiting[Key(kind: k.kind, inode: k.inode)] = Self.exitingChecks
        }
    }

    /// How many checks an exiting process's namespace gets before its exit is applied
    /// (then it is an ordinary candidate): 40 checks of 250 ms cover the 2 s grace.
    static let exitingChecks = 40

    private func isGone(_ handle: NamespaceHandle) -> Bool? {
        probes += 1
        switch probe.liveness(handle) {
        case .alive: return false
        case .gone: return true
        case .unknown: return nil
        }
    }

    /// Takes the registry's new candidates and checks all of them: still unused and
    /// gone -> NS_DESTROY. Returns whether a record was produced.
    @discardableResult
    func check() -> Bool {
        for c in registry.takeUnusedNamespaces() { candidates.append((Key(kind: c.kind, inode: c.inode), 0)) }
        rounds &+= 1
        var produced = false
        var kept: [(key: Key, alive: Int)] = []
        var seen = Set<Key>()
        for (key, alive) in candidates where seen.insert(key).inserted {
            if registry.isNamespaceInUse(key.kind, inode: key.inode) { continue }
            if reported.remove(key) != nil { continue }  // reported at its last user's EXIT
            let every = alive >= Self.longLivedAfter ? Self.longLivedEvery : Self.steadyEvery
            if alive >= Self.steadyAfter, rounds % every != 0 {
                kept.append((key, alive))
                continue
            }
            exiting[key] = nil
            let entry = known[key]
            let gone: Bool
            if let handle = entry?.handle {
                switch isGone(handle) {
                case false?: gone = false
                case true?: gone = true
                case nil:
                    unconfirmed += 1
                    gone = true
                }
            } else {
                unconfirmed += 1
                gone = true
            }
            if gone {
                registry.namespaceDestroyed(key.kind, inode: key.inode, nsid: entry?.nsid)
                known[key] = nil
                destroyed += 1
                produced = true
            } else {
                kept.append((key, alive + 1))
            }
        }
        candidates = kept
        // Exits not applied yet (candidates took theirs off the list above).
        for (key, left) in exiting {
            if let handle = known[key]?.handle, isGone(handle) == true {
                registry.namespaceDestroyed(key.kind, inode: key.inode, nsid: known[key]?.nsid)
                known[key] = nil
                reported.insert(key)
                destroyed += 1
                produced = true
                exiting[key] = nil
            } else {
                exiting[key] = left > 1 ? left - 1 : nil
            }
        }
        return produced
    }
}
