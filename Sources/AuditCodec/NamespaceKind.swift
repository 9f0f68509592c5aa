// The Linux namespace types (namespaces(7)) and the clone flags that make them:
// the one model the engine (NS_* records, per-process sets) and LinuxAudit
// (/proc/PID/ns, nsfs) share. Inodes are 64-bit everywhere: nsfs numbers fit
// in 32 bits today, but `st_ino` and the nsfs ids the kernel hands out are u64.

/// A namespace type, in the order NS_INFO prints them; the raw value is its name
/// under /proc/PID/ns and in records (`ns=net`).
public enum NamespaceKind: String, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    case cgroup, ipc, mnt, net, pid, time, user, uts

    public var name: String { rawValue }
    public var description: String { rawValue }

    /// The name as a static string, for record text built without allocating.
    public var staticName: StaticString {
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

    /// The `CLONE_NEW*` flag that creates a namespace of this kind (also what
    /// NS_GET_NSTYPE returns).
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

    /// The fixed inode number of the initial namespace of this kind.
    public var initialInode: UInt64 {
        switch self {
        case .ipc: 0xEFFF_FFFF
        case .uts: 0xEFFF_FFFE
        case .user: 0xEFFF_FFFD
        case .pid: 0xEFFF_FFFC
        case .cgroup: 0xEFFF_FFFB
        case .time: 0xEFFF_FFFA
        case .net: 0xEFFF_FFF9
        case .mnt: 0xEFFF_FFF8
        }
    }

    /// The kinds whose CLONE_NEW* bits are set in `flags` (clone/unshare a0, setns a1).
    public static func kinds(inCloneFlags flags: UInt64) -> [NamespaceKind] {
        allCases.filter { CloneFlags(rawValue: flags).contains($0.cloneFlag) }
    }
}

/// clone(2)/unshare(2) flags contid looks at (linux/sched.h values).
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
