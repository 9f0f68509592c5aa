#if os(Linux)
import AuditCodec
import CAuditLinux
import Glibc

/// A kernel audit rule, as `auditctl -a list,action -S ... -F ...` builds it, and its
/// wire form `struct audit_rule_data` (facts §1: 1040 bytes + string buffer).
public struct AuditRule: Hashable, Sendable, CustomStringConvertible {
    /// The filter list (`-a list,action`).
    public struct FilterList: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let user = FilterList(rawValue: 0)
        public static let task = FilterList(rawValue: 1)
        public static let exit = FilterList(rawValue: 4)
        public static let exclude = FilterList(rawValue: 5)
        public static let filesystem = FilterList(rawValue: 6)
        public static let ioUring = FilterList(rawValue: 7)
    }

    public enum Action: UInt32, Sendable {
        case never = 0
        case always = 2
    }

    /// Which syscalls a rule applies to: one bit per syscall number (`-S`).
    public struct Syscalls: Hashable, Sendable {
        static let words = 64  // AUDIT_BITMASK_SIZE
        /// The kernel turns the top 16 bits (AUDIT_SYSCALL_CLASSES) into syscall
        /// classes and clears them, so they never come back in a listed rule.
        static let classBits: UInt32 = 0xFFFF_0000
        public private(set) var mask: [UInt32]

        public static let all = Syscalls(mask: [UInt32](repeating: ~0, count: words))
        public static let none = Syscalls(mask: [UInt32](repeating: 0, count: words))

        public init(_ numbers: some Sequence<Int>) {
            var m = [UInt32](repeating: 0, count: Self.words)
            for n in numbers {
                precondition(n >= 0 && n < Self.words * 32 - 16, "syscall number \(n) out of range")
                m[n / 32] |= 1 << UInt32(n % 32)
            }
            mask = m
        }

        init(mask: [UInt32]) {
            var m = mask
            // A listed "-S all" lost its class bits; read it back as all.
            if m.dropLast().allSatisfy({ $0 == ~0 }) && m[Self.words - 1] | Self.classBits == ~0 {
                m[Self.words - 1] = ~0
            }
            self.mask = m
        }

        public var isAll: Bool { mask.allSatisfy { $0 == ~0 } }
        public func contains(_ n: Int) -> Bool { n >= 0 && n < Self.words * 32 && mask[n / 32] & (1 << UInt32(n % 32)) != 0 }
        public var numbers: [Int] { (0..<(Self.words * 32)).filter(contains) }
    }

    /// A field number (`-F name=...`), from linux/audit.h.
    public struct FieldKind: RawRepresentable, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let pid = FieldKind(rawValue: 0)
        public static let uid = FieldKind(rawValue: 1)
        public static let euid = FieldKind(rawValue: 2)
        public static let gid = FieldKind(rawValue: 5)
        public static let loginUID = FieldKind(rawValue: 9)
        public static let personality = FieldKind(rawValue: 10)
        public static let arch = FieldKind(rawValue: 11)
        public static let messageType = FieldKind(rawValue: 12)
        public static let ppid = FieldKind(rawValue: 18)
        public static let loginUIDSet = FieldKind(rawValue: 24)
        public static let sessionID = FieldKind(rawValue: 25)
        public static let devMajor = FieldKind(rawValue: 100)
        public static let inode = FieldKind(rawValue: 102)
        public static let exit = FieldKind(rawValue: 103)
        public static let success = FieldKind(rawValue: 104)
        /// A path watch (`-w` / `-F path=`); string.
        public static let watch = FieldKind(rawValue: 105)
        /// Permission bits of a watch (`-p rwxa`), see `Permission`.
        public static let permission = FieldKind(rawValue: 106)
        /// A directory watch (`-F dir=`); string.
        public static let directory = FieldKind(rawValue: 107)
        /// An executable path (`-F exe=`); string.
        public static let executable = FieldKind(rawValue: 112)
        public static let arg0 = FieldKind(rawValue: 200)
        public static let arg1 = FieldKind(rawValue: 201)
        public static let arg2 = FieldKind(rawValue: 202)
        public static let arg3 = FieldKind(rawValue: 203)
        /// The rule key (`-k`); string of at most 256 bytes.
        public static let key = FieldKind(rawValue: 210)

        /// Fields whose value travels in the string buffer: LSM labels (13-17, 19-23),
        /// watch, dir, exe, filterkey.
        public var isString: Bool {
            switch rawValue {
            case 13...17, 19...23, 105, 107, 112, 210: return true
            default: return false
            }
        }
    }

    /// Bits of `FieldKind.permission`.
    public struct Permission: OptionSet, Hashable, Sendable {
        public var rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let execute = Permission(rawValue: 1)
        public static let write = Permission(rawValue: 2)
        public static let read = Permission(rawValue: 4)
        public static let attribute = Permission(rawValue: 8)
    }

    public enum Operator: UInt32, Sendable {
        case equal = 0x4000_0000
        case notEqual = 0x3000_0000
        case lessThan = 0x1000_0000
        case greaterThan = 0x2000_0000
        case bitMask = 0x0800_0000
        case bitTest = 0x4800_0000
        case lessOrEqual = 0x5000_0000
        case greaterOrEqual = 0x6000_0000

        /// auditctl's spelling.
        public var symbol: String {
            switch self {
            case .equal: return "="
            case .notEqual: return "!="
            case .lessThan: return "<"
            case .greaterThan: return ">"
            case .bitMask: return "&"
            case .bitTest: return "&="
            case .lessOrEqual: return "<="
            case .greaterOrEqual: return ">="
            }
        }
    }

    public enum Value: Hashable, Sendable {
        case number(UInt32)
        case string(String)
    }

    public struct Field: Hashable, Sendable {
        public var kind: FieldKind
        public var op: Operator
        public var value: Value
        public init(_ kind: FieldKind, _ op: Operator = .equal, _ value: Value) {
            precondition(kind.isString == { if case .string = value { true } else { false } }(),
                         "field \(kind.rawValue) takes a \(kind.isString ? "string" : "number")")
            self.kind = kind
            self.op = op
            self.value = value
        }
        public init(_ kind: FieldKind, _ op: Operator = .equal, _ number: UInt32) { self.init(kind, op, .number(number)) }
        public init(_ kind: FieldKind, _ op: Operator = .equal, _ string: String) { self.init(kind, op, .string(string)) }
    }

    public var list: FilterList
    public var action: Action
    public var syscalls: Syscalls
    public var fields: [Field]

    public init(list: FilterList, action: Action, syscalls: Syscalls = .all, fields: [Field] = []) {
        self.list = list
        self.action = action
        self.syscalls = syscalls
        self.fields = fields
    }

    /// The `-k` key, if the rule has one.
    public var key: String? {
        for f in fields where f.kind == .key { if case .string(let s) = f.value { return s } }
        return nil
    }

    public var description: String {
        var s = "-a \(action == .always ? "always" : "never"),list\(list.rawValue)"
        if syscalls.isAll { s += " -S all" } else if !syscalls.numbers.isEmpty {
            s += " -S " + syscalls.numbers.map(String.init).joined(separator: ",")
        }
        for f in fields {
            switch f.value {
            case .number(let n): s += " -F \(f.kind.rawValue)\(f.op.symbol)\(n)"
            case .string(let v): s += " -F \(f.kind.rawValue)\(f.op.symbol)\"\(v)\""
            }
        }
        return s
    }

    // MARK: wire form

    static let prependFlag: UInt32 = 0x10
    static let maxFields = 64
    static let fixedSize = Int(caudit_rule_data_size())

    /// The `struct audit_rule_data` bytes for AUDIT_ADD_RULE / AUDIT_DEL_RULE.
    /// `prepend` sets AUDIT_FILTER_PREPEND (`auditctl -A`, add only): the kernel
    /// inserts the rule at the head of its list and then forgets the flag (6.18:
    /// not listed, and a delete carrying it fails with ENOENT).
    public func encoded(prepend: Bool = false) -> [UInt8] {
        precondition(fields.count <= Self.maxFields, "at most 64 fields per rule")
        var strings: [UInt8] = []
        for f in fields { if case .string(let s) = f.value { strings += Array(s.utf8) } }
        var bytes = [UInt8](repeating: 0, count: Self.fixedSize + strings.count)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: list.rawValue | (prepend ? Self.prependFlag : 0), toByteOffset: 0, as: UInt32.self)
            raw.storeBytes(of: action.rawValue, toByteOffset: 4, as: UInt32.self)
            raw.storeBytes(of: UInt32(fields.count), toByteOffset: 8, as: UInt32.self)
            for (i, word) in syscalls.mask.enumerated() {
                raw.storeBytes(of: word, toByteOffset: 12 + 4 * i, as: UInt32.self)
            }
            for (i, f) in fields.enumerated() {
                let value: UInt32
                switch f.value {
                case .number(let n): value = n
                case .string(let s): value = UInt32(s.utf8.count)
                }
                raw.storeBytes(of: f.kind.rawValue, toByteOffset: 268 + 4 * i, as: UInt32.self)
                raw.storeBytes(of: value, toByteOffset: 524 + 4 * i, as: UInt32.self)
                raw.storeBytes(of: f.op.rawValue, toByteOffset: 780 + 4 * i, as: UInt32.self)
            }
            raw.storeBytes(of: UInt32(strings.count), toByteOffset: 1036, as: UInt32.self)
            for (i, b) in strings.enumerated() { raw[Self.fixedSize + i] = b }
        }
        return bytes
    }

    /// Reads a rule the kernel listed (AUDIT_LIST_RULES reply payload).
    public init(decoding raw: UnsafeRawBufferPointer) throws {
        func fail(_ reason: String) -> LinuxAuditError { .malformed(what: "audit_rule_data", reason: reason) }
        guard raw.count >= Self.fixedSize else { throw fail("\(raw.count) bytes, need \(Self.fixedSize)") }
        let flags = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self)
        list = FilterList(rawValue: flags & ~Self.prependFlag)
        guard let a = Action(rawValue: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) else {
            throw fail("unknown action \(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))")
        }
        action = a
        let count = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard count <= Self.maxFields else { throw fail("field_count \(count) > 64") }
        syscalls = Syscalls(mask: (0..<Syscalls.words).map { raw.loadUnaligned(fromByteOffset: 12 + 4 * $0, as: UInt32.self) })
        let bufLen = Int(raw.loadUnaligned(fromByteOffset: 1036, as: UInt32.self))
        guard raw.count >= Self.fixedSize + bufLen else { throw fail("buflen \(bufLen) past the end (\(raw.count) bytes)") }
        var cursor = Self.fixedSize
        var fields: [Field] = []
        for i in 0..<count {
            let kind = FieldKind(rawValue: raw.loadUnaligned(fromByteOffset: 268 + 4 * i, as: UInt32.self))
            let value = raw.loadUnaligned(fromByteOffset: 524 + 4 * i, as: UInt32.self)
            let opRaw = raw.loadUnaligned(fromByteOffset: 780 + 4 * i, as: UInt32.self)
            guard let op = Operator(rawValue: opRaw) else { throw fail("field \(i): unknown operator \(opRaw)") }
            if kind.isString {
                let len = Int(value)
                guard cursor + len <= Self.fixedSize + bufLen else { throw fail("field \(i): string runs past buflen") }
                fields.append(Field(kind, op, .string(String(decoding: raw[cursor..<(cursor + len)], as: UTF8.self))))
                cursor += len
            } else {
                fields.append(Field(kind, op, .number(value)))
            }
        }
        self.fields = fields
    }
}

// MARK: - Architectures and the rules contid loads

/// The architectures this machine runs, and the syscall numbers contid tracks on each.
extension AuditArch {
    /// This machine's native architecture.
    public static var native: AuditArch {
        #if arch(x86_64)
        return .x86_64
        #elseif arch(arm64)
        return .aarch64
        #else
        fatalError("unsupported architecture")
        #endif
    }

    /// Every ABI whose processes can run here (x86_64 also runs i386 binaries).
    public static var supported: [AuditArch] {
        #if arch(x86_64)
        return [.x86_64, .i386]
        #else
        return [.native]
        #endif
    }

    /// Namespace changes: unshare, setns.
    public var namespaceSyscalls: [Int] {
        switch self {
        case .x86_64: return [272, 308]
        case .i386: return [310, 346]
        case .aarch64: return [97, 268]
        default: return []
        }
    }

    /// Process creation, exec, exit and namespace changes: clone, fork, vfork, execve,
    /// exit_group, unshare, setns, execveat, clone3 (ausyscall numbers, facts §1).
    public var trackedSyscalls: [Int] {
        switch self {
        case .x86_64: return [56, 57, 58, 59, 231, 272, 308, 322, 435]
        case .i386: return [120, 2, 190, 11, 252, 310, 346, 358, 435]
        case .aarch64: return [220, 221, 94, 97, 268, 281, 435]  // no fork/vfork
        default: return []
        }
    }
}

extension AuditRule {
    /// The key of contid's own tracking rules.
    public static let trackingKey = "contid-track"

    /// `-a never,exit -S all -F pid=<pid> -F exe=<path>`: the daemon's own syscalls are
    /// never audited. The executable condition keeps the rule from exempting whoever
    /// reuses the pid after a crash. Add it with `prepend: true` so it is evaluated
    /// before every other exit rule.
    public static func selfExclusion(pid: pid_t = getpid(), executable: String? = ownExecutable) -> AuditRule {
        var fields = [Field(.pid, .equal, UInt32(bitPattern: pid))]
        if let executable { fields.append(Field(.executable, .equal, executable)) }
        return AuditRule(list: .exit, action: .never, syscalls: .all, fields: fields)
    }

    /// This process's executable (`/proc/self/exe`); nil when it cannot be named
    /// (deleted or replaced since it started).
    public static var ownExecutable: String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        let path = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard path.hasPrefix("/"), !path.hasSuffix(" (deleted)") else { return nil }
        return path
    }

    /// `-a always,exit -F arch=<arch> -S clone,fork,... -k <key>` (`syscalls`: the
    /// arch's tracked syscalls unless given).
    public static func tracking(arch: AuditArch, syscalls: [Int]? = nil, key: String = trackingKey) -> AuditRule {
        AuditRule(list: .exit, action: .always, syscalls: Syscalls(syscalls ?? arch.trackedSyscalls),
                  fields: [Field(.arch, .equal, arch.rawValue), Field(.key, .equal, key)])
    }

    /// The self-exclusion rule first, then one tracking rule per supported ABI: the
    /// order they must end up in (add the first with `prepend: true`).
    public static func contidRules(pid: pid_t = getpid(), executable: String? = ownExecutable,
                                   key: String = trackingKey) -> [AuditRule] {
        [selfExclusion(pid: pid, executable: executable)] + AuditArch.supported.map { tracking(arch: $0, key: key) }
    }

    /// `-w path -p perms -k key`: an exit rule with a path watch.
    public static func watch(path: String, permissions: Permission, key: String? = nil) -> AuditRule {
        var fields = [Field(.watch, .equal, path), Field(.permission, .equal, permissions.rawValue)]
        if let key { fields.append(Field(.key, .equal, key)) }
        return AuditRule(list: .exit, action: .always, syscalls: .all, fields: fields)
    }
}
#endif
