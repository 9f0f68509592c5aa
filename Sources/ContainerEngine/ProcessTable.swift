// The live processes the engine knows, keyed by pid. Entries are kept small
// (40 bytes: no class references, the container as an index into the registry's
// object array, the namespaces as an index into the namespace table).

/// What the engine keeps per live process: one entry per thread group, keyed by its
/// tgid (the `pid=` of every record its threads cause), so every thread, and every
/// thread created later, has the group's container. Threads are only counted.
struct ProcessEntry {
    var start: UInt64
    /// The parent's start time when the link was made, 0 when the parent was not
    /// tracked. A parent entry with another start time means the parent died and
    /// this process was reparented, which the table resolves lazily (no scan on exit).
    var parentStart: UInt64
    var parent: Int32
    /// Index of the process's own (innermost) container object; `noContainer` when unset.
    var container: Int32
    var children: Int32
    var threads: Int32
    var namespaces: UInt32
    var capContID: Bool

    static let noContainer: Int32 = -1
}

struct ProcessTable: ProcessTopology {
    var entries = PIDMap<ProcessEntry>(filler: ProcessEntry(
        start: 0, parentStart: 0, parent: 0, container: ProcessEntry.noContainer,
        children: 0, threads: 0, namespaces: 0, capContID: false))

    init() {}

    var count: Int { entries.count }

    @inline(__always)
    subscript(pid: Int32) -> ProcessEntry? {
        get { entries[pid] }
        _modify { yield &entries[pid] }
    }

    /// The entry of exactly this process (pid and start time).
    func entry(_ key: ProcessKey) -> ProcessEntry? {
        guard let e = entries[key.pid], e.start == key.start else { return nil }
        return e
    }

    /// The parent that is still the one recorded at creation, or nil when it exited.
    func liveParent(of e: ProcessEntry) -> Int32? {
        guard let p = entries[e.parent] else { return e.parentStart == 0 ? e.parent : nil }
        return e.parentStart == 0 || p.start == e.parentStart ? e.parent : nil
    }

    func startTime(of pid: Int32) -> UInt64? { entries[pid]?.start }

    /// The recorded parent while it lives; once it exited, init (pid 1), the reaper
    /// the kernel reparents to when no subreaper is known.
    func parent(of pid: Int32) -> Int32? {
        guard let e = entries[pid] else { return nil }
        if let p = liveParent(of: e) { return p }
        return pid == 1 ? nil : 1
    }

    func childCount(of pid: Int32) -> Int { Int(entries[pid]?.children ?? 0) }
}
