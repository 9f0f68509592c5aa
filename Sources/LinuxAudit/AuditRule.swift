#if os(Linux)
import AuditCodec
import CAuditLinux
import Glibc

/// The wire form `struct audit_rule_data` (facts §1: 1040 bytes + string buffer),
/// here because its layout is the C header's (`caudit_rule_data_size`).
extension AuditRule {
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
        guard let action = Action(rawValue: raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) else {
            throw fail("unknown action \(raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self))")
        }
        let count = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard count <= Self.maxFields else { throw fail("field_count \(count) > 64") }
        let syscalls = Syscalls(mask: (0..<Syscalls.words).map { raw.loadUnaligned(fromByteOffset: 12 + 4 * $0, as: UInt32.self) })
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
        self.init(list: FilterList(rawValue: flags & ~Self.prependFlag), action: action, syscalls: syscalls, fields: fields)
    }
}

// MARK: - Architectures and the rules contid loads

/// The syscall numbers contid tracks on each architecture, from the one syscall table.
extension AuditArch {
    /// Namespace changes: unshare, setns.
    public var namespaceSyscalls: [Int] { [TrackedSyscall.unshare, .setns].compactMap(number(of:)) }

    /// Process creation, exec, exit and namespace changes (facts §1); aarch64 has no
    /// fork or vfork.
    public var trackedSyscalls: [Int] { TrackedSyscall.allCases.compactMap(number(of:)) }
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

    /// The CLONE_NEW* bits of clone(2)'s flags (a0): mnt, cgroup, uts, ipc, user, pid,
    /// net. CLONE_NEWTIME (0x80) is clone3-only: in clone(2) that bit is the exit signal's.
    public static let cloneNamespaceMask: UInt32 = 0x7E02_0000

    /// contidd's default tracking rules (`tracking_rules = namespaces`), on every
    /// supported ABI: unshare and setns, and clone only when its flags ask for a new
    /// namespace (`-F a0&0x7e020000`), so ordinary forks stay unaudited. clone3 keeps
    /// its flags in memory the rule cannot read: a bare clone3 rule would audit most
    /// spawns (glibc's pthread_create, posix_spawn), so it is in `fullTracking` only.
    public static func namespaceTracking(key: String = trackingKey) -> [AuditRule] {
        AuditArch.supported.map { tracking(arch: $0, syscalls: $0.namespaceSyscalls, key: key) }
            + AuditArch.supported.compactMap { namespaceCloneTracking(arch: $0, key: key) }
    }

    /// `-a always,exit -F arch=<arch> -S clone -F a0&0x7e020000 -k <key>`.
    public static func namespaceCloneTracking(arch: AuditArch, key: String = trackingKey) -> AuditRule? {
        guard let clone = arch.number(of: .clone) else { return nil }
        return AuditRule(list: .exit, action: .always, syscalls: Syscalls([clone]),
                         fields: [Field(.arch, .equal, arch.rawValue), Field(.arg0, .bitMask, cloneNamespaceMask),
                                  Field(.key, .equal, key)])
    }

    /// Every process's life (`tracking_rules = all`): clone..clone3, exec, exit_group,
    /// unshare, setns on every supported ABI.
    public static func fullTracking(key: String = trackingKey) -> [AuditRule] {
        AuditArch.supported.map { tracking(arch: $0, key: key) }
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
