// The audit rule model: what `auditctl -a list,action -S ... -F ...` asks the
// kernel for, in the numbers of linux/audit.h. Portable, so the rules parser
// (AuditPipeline) and the kernel interface (LinuxAudit: wire form, loading) share it.

/// A kernel audit rule, as `auditctl -a list,action -S ... -F ...` builds it. Its wire
/// form `struct audit_rule_data` is LinuxAudit's (`encoded()`, `init(decoding:)`).
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
        public static let words = 64  // AUDIT_BITMASK_SIZE
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

        /// From the kernel's bitmask (a listed rule).
        public init(mask: [UInt32]) {
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

    public enum Operator: UInt32, CaseIterable, Sendable {
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
}
