// Linux namespaces as the engine tracks them: the inode of each kind per
// process (nsfs device + inode identify a namespace), interned per distinct set,
// so 64-bit inodes cost per set, not per process.

import AuditCodec

/// The namespace inodes of one process; 0 means not known.
public struct NamespaceSet: Hashable, Sendable, Codable {
    public var cgroup: UInt64 = 0
    public var ipc: UInt64 = 0
    public var mnt: UInt64 = 0
    public var net: UInt64 = 0
    public var pid: UInt64 = 0
    public var time: UInt64 = 0
    public var user: UInt64 = 0
    public var uts: UInt64 = 0

    public init() {}

    public init(_ inodes: [NamespaceKind: UInt64]) {
        for (type, inode) in inodes { self[type] = inode }
    }

    public subscript(type: NamespaceKind) -> UInt64 {
        get {
            switch type {
            case .cgroup: cgroup
            case .ipc: ipc
            case .mnt: mnt
            case .net: net
            case .pid: pid
            case .time: time
            case .user: user
            case .uts: uts
            }
        }
        set {
            switch type {
            case .cgroup: cgroup = newValue
            case .ipc: ipc = newValue
            case .mnt: mnt = newValue
            case .net: net = newValue
            case .pid: pid = newValue
            case .time: time = newValue
            case .user: user = newValue
            case .uts: uts = newValue
            }
        }
    }

    public var isEmpty: Bool { self == NamespaceSet() }
}

/// How a task came to change namespaces.
public enum NamespaceOperation: String, Sendable, Codable {
    case clone, unshare, setns
}

/// One namespace: its kind and inode.
struct NamespaceKey: Hashable {
    var type: NamespaceKind
    var inode: UInt64
}

/// The distinct namespace sets in use, each with the number of processes using it,
/// so a process entry stores one 32-bit index; and how many sets use each namespace,
/// so the engine sees when a namespace is no longer used (NS_DESTROY).
struct NamespaceTable {
    /// Index 0 is "nothing known" and is never counted.
    private(set) var sets: [NamespaceSet] = [NamespaceSet()]
    private var users: [Int32] = [0]
    private var indexOf: [NamespaceSet: UInt32] = [:]
    private var free: [UInt32] = []
    private var usage: [NamespaceKey: Int32] = [:]

    subscript(index: UInt32) -> NamespaceSet { sets[Int(index)] }

    func isInUse(_ key: NamespaceKey) -> Bool { usage[key, default: 0] > 0 }

    /// Whether the process holding `index` is the only user of `key` (one set, one process).
    func isOnlyUser(_ index: UInt32, of key: NamespaceKey) -> Bool {
        index != 0 && users[Int(index)] == 1 && usage[key, default: 0] == 1
    }

    /// One more process uses `set`; returns its index.
    mutating func retain(_ set: NamespaceSet) -> UInt32 {
        if set.isEmpty { return 0 }
        if let i = indexOf[set] {
            users[Int(i)] += 1
            return i
        }
        let i: UInt32
        if let f = free.popLast() {
            i = f
            sets[Int(i)] = set
            users[Int(i)] = 1
        } else {
            i = UInt32(sets.count)
            sets.append(set)
            users.append(1)
        }
        indexOf[set] = i
        for type in NamespaceKind.allCases where set[type] != 0 {
            usage[NamespaceKey(type: type, inode: set[type]), default: 0] += 1
        }
        return i
    }

    /// One process fewer uses the set at `index`; appends namespaces no longer used by anyone.
    mutating func release(_ index: UInt32, unused: inout [NamespaceKey]) {
        if index == 0 { return }
        let i = Int(index)
        users[i] -= 1
        guard users[i] == 0 else { return }
        let set = sets[i]
        indexOf[set] = nil
        free.append(index)
        sets[i] = NamespaceSet()
        for type in NamespaceKind.allCases where set[type] != 0 {
            let key = NamespaceKey(type: type, inode: set[type])
            let n = usage[key, default: 0] - 1
            if n <= 0 {
                usage[key] = nil
                unused.append(key)
            } else {
                usage[key] = n
            }
        }
    }
}
