// Linux namespaces as the engine tracks them: the inode of each type per
// process (nsfs device + inode identify a namespace), interned per distinct set.

/// The namespace types, in the order NS_INFO prints them.
public enum NamespaceType: Int, CaseIterable, Sendable, Codable, CustomStringConvertible {
    case cgroup, ipc, mnt, net, pid, time, user, uts

    /// The name records use (`ns=net`), as under `/proc/PID/ns/`.
    public var name: String { staticName.description }
    public var description: String { name }

    /// The `CLONE_NEW*` flag that creates a namespace of this type.
    public var cloneFlag: CloneFlags {
        switch self {
        case .cgroup: .newCgroup
        case .ipc: .newIPC
        case .mnt: .newNS
        case .net: .newNet
        case .pid: .newPID
        case .time: .newTime
        case .user: .newUser
        case .uts: .newUTS
        }
    }
}

/// clone(2)/unshare(2) flags the engine looks at (linux/sched.h values).
public struct CloneFlags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let newTime = CloneFlags(rawValue: 0x0000_0080)
    public static let vfork = CloneFlags(rawValue: 0x0000_4000)
    public static let thread = CloneFlags(rawValue: 0x0001_0000)
    public static let newNS = CloneFlags(rawValue: 0x0002_0000)
    public static let newCgroup = CloneFlags(rawValue: 0x0200_0000)
    public static let newUTS = CloneFlags(rawValue: 0x0400_0000)
    public static let newIPC = CloneFlags(rawValue: 0x0800_0000)
    public static let newUser = CloneFlags(rawValue: 0x1000_0000)
    public static let newPID = CloneFlags(rawValue: 0x2000_0000)
    public static let newNet = CloneFlags(rawValue: 0x4000_0000)
}

/// The namespace inodes of one process; 0 means not known.
public struct NamespaceSet: Hashable, Sendable, Codable {
    public var cgroup: UInt32 = 0
    public var ipc: UInt32 = 0
    public var mnt: UInt32 = 0
    public var net: UInt32 = 0
    public var pid: UInt32 = 0
    public var time: UInt32 = 0
    public var user: UInt32 = 0
    public var uts: UInt32 = 0

    public init() {}

    public init(_ inodes: [NamespaceType: UInt32]) {
        for (type, inode) in inodes { self[type] = inode }
    }

    public subscript(type: NamespaceType) -> UInt32 {
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

/// One namespace: its type and inode.
struct NamespaceKey: Hashable {
    var type: NamespaceType
    var inode: UInt32
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
        for type in NamespaceType.allCases where set[type] != 0 {
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
        for type in NamespaceType.allCases where set[type] != 0 {
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

extension NamespaceType {
    var staticName: StaticString {
        switch self {
        case .cgroup: "cgroup"
        case .ipc: "ipc"
        case .mnt: "mnt"
        case .net: "net"
        case .pid: "pid"
        case .time: "time"
        case .user: "user"
        case .uts: "uts"
        }
    }
}
