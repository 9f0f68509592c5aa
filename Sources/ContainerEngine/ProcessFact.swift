// What the engine is told about processes: the facts a proc connector, the
// audit stream, a /proc scan or an offline log yield, already typed.

import AuditCodec

public enum ProcessFact: Sendable, Hashable {
    /// Whether a creation made a new process (fork, vfork, clone) or a thread.
    public enum Kind: Sendable, Hashable { case process, thread }

    /// `parent` (a thread-group id) created `child`. For a thread, `child` is the
    /// new thread and only `parent`'s thread count changes. `namespaces` are the
    /// child's, when known; otherwise it has its parent's, except for the types
    /// `cloneFlags` made new, which stay unknown.
    case created(
        parent: Int32, child: ProcessKey, kind: Kind = .process, cloneFlags: CloneFlags = [],
        namespaces: NamespaceSet? = nil)
    /// exec(2): changes nothing for containers.
    case executed(ProcessKey)
    /// A thread of `process` other than its last one exited.
    case threadExited(process: Int32)
    /// The whole thread group exited.
    case exited(ProcessKey)
    /// `pid` moved to the namespaces that are non-zero in `namespaces` (unshare, setns).
    case namespacesChanged(pid: Int32, operation: NamespaceOperation, namespaces: NamespaceSet)
    /// A live process seen late (a /proc scan, a record's `ppid=`): it takes its
    /// parent's container as it is now. Namespaces stay unknown unless given.
    case discovered(ProcessKey, parent: Int32, threads: Int32 = 1, namespaces: NamespaceSet? = nil)
}
