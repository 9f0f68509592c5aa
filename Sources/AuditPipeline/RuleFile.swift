// Audit rules in auditctl syntax (SPEC §7), one per line, `#` comments, as
// files in a rules directory. Parsing is pure: it gives AuditCodec's
// `AuditRule`, which the daemon loads as it is. The `contid` field is contid's
// own: the kernel has no such field, so it is taken out of the kernel rule and
// evaluated in user space on the chain of the event's task.

import AuditCodec
import ContainerEngine

/// What one line of a rules file asks for.
public enum RuleCommand: Hashable, Sendable {
    /// `-a`/`-A`/`-w`: a rule for the kernel (with contid predicates kept aside).
    case add(ParsedRule, prepend: Bool)
    /// `-D`: delete every rule loaded before.
    case deleteAll
    /// `-b N`: the kernel's backlog limit.
    case backlogLimit(UInt32)
}

/// A rule of a rules file: the kernel rule, plus the contid predicates contidd
/// checks itself.
public struct ParsedRule: Hashable, Sendable {
    /// What the kernel is given; `-k` is among its fields.
    public var rule: AuditRule
    /// `-F contid=...`: all must match the event task's chain.
    public var contid: [ContainerPredicate]

    public init(rule: AuditRule, contid: [ContainerPredicate]) {
        self.rule = rule
        self.contid = contid
    }

    public var key: String? { rule.key }
}

extension AuditRule {
    /// `-w PATH` on a directory watches the tree (AUDIT_DIR), as auditctl decides by
    /// stat; the caller gives the stat, as parsing does no I/O.
    public func watchingDirectories(where isDirectory: (String) -> Bool) -> AuditRule {
        var rule = self
        for i in rule.fields.indices where rule.fields[i].kind == .watch {
            if case .string(let path) = rule.fields[i].value, isDirectory(path) { rule.fields[i].kind = .directory }
        }
        return rule
    }
}

/// A rule line contidd cannot use: `rules.d/10-base.rules:14: unknown field "contd"; did you mean "contid"?`
public struct RuleError: Error, Hashable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var reason: String
    public init(file: String, line: Int, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }
    public var description: String { "\(file):\(line): \(reason)" }
}

/// One parsed line and where it came from.
public struct RuleLine: Hashable, Sendable {
    public var file: String
    public var line: Int
    public var command: RuleCommand
}

public enum RuleParser {
    static let lists: [String: AuditRule.FilterList] = [
        "user": .user, "task": .task, "exit": .exit, "exclude": .exclude, "filesystem": .filesystem,
    ]

    /// Field names auditctl knows, with their AUDIT_* numbers (`FieldKind.isString` says which take strings).
    static let fieldNumbers: [String: AuditRule.FieldKind] = ([
        "pid": 0, "uid": 1, "euid": 2, "suid": 3, "fsuid": 4, "gid": 5, "egid": 6, "sgid": 7, "fsgid": 8,
        "auid": 9, "loginuid": 9, "pers": 10, "arch": 11, "msgtype": 12, "ppid": 18, "loginuid_set": 24,
        "sessionid": 25, "devmajor": 100, "devminor": 101, "inode": 102, "exit": 103, "success": 104,
        "path": 105, "perm": 106, "dir": 107, "filetype": 108, "obj_uid": 109, "obj_gid": 110, "exe": 112,
        "a0": 200, "a1": 201, "a2": 202, "a3": 203, "key": 210,
    ] as [String: UInt32]).mapValues(AuditRule.FieldKind.init(rawValue:))

    /// Parses a whole rules file. Every bad line is reported; good lines are kept.
    public static func parse(_ text: String, file: String) -> (lines: [RuleLine], errors: [RuleError]) {
        var lines: [RuleLine] = []
        var errors: [RuleError] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            do {
                if let command = try parseLine(String(raw)) { lines.append(RuleLine(file: file, line: i + 1, command: command)) }
            } catch {
                errors.append(RuleError(file: file, line: i + 1, reason: error.reason))
            }
        }
        return (lines, errors)
    }

    struct LineError: Error { var reason: String }

    /// One line; nil for blank lines and comments.
    static func parseLine(_ line: String) throws(LineError) -> RuleCommand? {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)
        guard let first = words.first, !first.hasPrefix("#") else { return nil }
        var i = 0
        func next(_ option: String) throws(LineError) -> String {
            i += 1
            guard i < words.count else { throw LineError(reason: "\(option) needs a value") }
            return words[i]
        }
        var listAction: (list: AuditRule.FilterList, action: AuditRule.Action)?
        var prepend = false
        var watch: String?
        var permission: UInt32?
        var syscallNames: [String] = []
        var fieldTexts: [String] = []
        var key: String?
        var command: RuleCommand?

        while i < words.count {
            let w = words[i]
            switch w {
            case "-D":
                command = .deleteAll
            case "-b":
                let v = try next(w)
                guard let n = UInt32(v) else { throw LineError(reason: "-b needs a number, not \"\(v)\"") }
                command = .backlogLimit(n)
            case "-a", "-A":
                listAction = try parseListAction(try next(w))
                prepend = w == "-A"
            case "-w":
                watch = try next(w)
            case "-p":
                permission = try parsePermission(try next(w))
            case "-S":
                syscallNames += try next(w).split(separator: ",").map(String.init)
            case "-F":
                fieldTexts.append(try next(w))
            case "-k":
                key = try next(w)
            default:
                if w.hasPrefix("-") {
                    throw LineError(reason: "option \(w) is not supported here; use -a, -A, -w, -p, -S, -F, -k, -D or -b")
                }
                throw LineError(reason: "unexpected \"\(w)\"")
            }
            i += 1
        }
        if let command {
            guard listAction == nil, watch == nil, fieldTexts.isEmpty, syscallNames.isEmpty, key == nil else {
                throw LineError(reason: "-D and -b stand alone on their line")
            }
            return command
        }

        var fields: [AuditRule.Field] = []
        var contid: [ContainerPredicate] = []
        // The arch field decides what syscall names mean; auditctl wants it first, we find it anywhere.
        var arch = AuditArch.native
        for text in fieldTexts {
            let (name, op, value) = try splitField(text)
            if name == "arch" { arch = try parseArch(value) }
            _ = op
        }
        for text in fieldTexts {
            let (name, opText, value) = try splitField(text)
            guard let op = AuditRule.Operator.allCases.first(where: { $0.symbol == opText }) else {
                throw LineError(reason: "unknown operator \"\(opText)\" in \"\(text)\"")
            }
            if name == "contid" {
                guard op == .equal || op == .notEqual else {
                    throw LineError(reason: "contid takes = or !=, not \(opText)")
                }
                do {
                    contid.append(try ContainerPredicate(op == .equal ? .equal : .notEqual, parsing: value))
                } catch {
                    throw LineError(reason: "contid: \(error.reason)")
                }
                continue
            }
            if name == "key" {
                key = value
                continue
            }
            guard let kind = fieldNumbers[name] else {
                var reason = "unknown field \"\(name)\""
                if let s = suggestion(for: name, among: Array(fieldNumbers.keys) + ["contid"]) {
                    reason += "; did you mean \"\(s)\"?"
                }
                throw LineError(reason: reason)
            }
            if kind.isString {
                fields.append(AuditRule.Field(kind, op, .string(value)))
            } else {
                fields.append(AuditRule.Field(kind, op, .number(try parseNumber(name, value, arch: arch))))
            }
        }

        if let watch {
            guard listAction == nil, syscallNames.isEmpty else {
                throw LineError(reason: "-w makes its own rule; it does not go with -a or -S")
            }
            guard watch.hasPrefix("/") else { throw LineError(reason: "-w needs an absolute path, not \"\(watch)\"") }
            fields.insert(AuditRule.Field(.watch, .equal, watch), at: 0)
            fields.insert(AuditRule.Field(.permission, .equal, permission ?? 0xF), at: 1)
            listAction = (.exit, .always)
        } else if let permission {
            fields.append(AuditRule.Field(.permission, .equal, permission))
        }
        guard let (list, action) = listAction else { throw LineError(reason: "a rule needs -a LIST,ACTION or -w PATH") }

        var syscalls = AuditRule.Syscalls.all
        if !syscallNames.isEmpty && !syscallNames.contains("all") {
            guard list == .exit else { throw LineError(reason: "-S applies to the exit list only") }
            syscalls = AuditRule.Syscalls(try syscallNames.map { (n) throws(LineError) -> Int in try syscallNumber(n, arch: arch) })
        }
        if !contid.isEmpty {
            guard list == .exit || list == .user else {
                throw LineError(reason: "contid can be checked on exit and user rules only")
            }
            guard action == .always else {
                throw LineError(reason: "contid on a never rule cannot be given to the kernel; use an always rule with -k and filter on the key")
            }
            guard key != nil else {
                throw LineError(reason: "a rule with -F contid needs -k KEY: contidd matches events to the rule by its key")
            }
        }
        if let key {
            guard !key.isEmpty, key.utf8.count <= 256 else { throw LineError(reason: "a key is 1 to 256 bytes") }
            fields.append(AuditRule.Field(.key, .equal, key))
        }
        guard fields.count <= 64 else { throw LineError(reason: "at most 64 fields per rule") }
        return .add(ParsedRule(rule: AuditRule(list: list, action: action, syscalls: syscalls, fields: fields), contid: contid),
                    prepend: prepend)
    }

    static func parseListAction(_ text: String) throws(LineError) -> (AuditRule.FilterList, AuditRule.Action) {
        let parts = text.split(separator: ",").map(String.init)
        guard parts.count == 2 else { throw LineError(reason: "-a takes LIST,ACTION (e.g. always,exit), not \"\(text)\"") }
        var list: AuditRule.FilterList?
        var action: AuditRule.Action?
        for p in parts {
            if let l = lists[p] { list = l } else if p == "always" { action = .always } else if p == "never" { action = .never } else {
                var reason = "unknown list or action \"\(p)\""
                if let s = suggestion(for: p, among: Array(lists.keys) + ["always", "never"]) { reason += "; did you mean \"\(s)\"?" }
                throw LineError(reason: reason)
            }
        }
        guard let list, let action else { throw LineError(reason: "-a takes one list and one action, not \"\(text)\"") }
        return (list, action)
    }

    static func parsePermission(_ text: String) throws(LineError) -> UInt32 {
        var bits: AuditRule.Permission = []
        for c in text {
            switch c {
            case "x": bits.insert(.execute)
            case "w": bits.insert(.write)
            case "r": bits.insert(.read)
            case "a": bits.insert(.attribute)
            default: throw LineError(reason: "permission \"\(text)\": use the letters r, w, x and a")
            }
        }
        guard !bits.isEmpty else { throw LineError(reason: "empty permission") }
        return bits.rawValue
    }

    static func splitField(_ text: String) throws(LineError) -> (String, String, String) {
        guard let start = text.firstIndex(where: { "=!<>&".contains($0) }) else {
            throw LineError(reason: "-F \"\(text)\" needs NAME=VALUE")
        }
        let name = String(text[..<start])
        var end = start
        while end < text.endIndex, "=!<>&".contains(text[end]) { end = text.index(after: end) }
        var value = String(text[end...])
        if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
        guard !name.isEmpty else { throw LineError(reason: "-F \"\(text)\" has no field name") }
        guard !value.isEmpty else { throw LineError(reason: "field \"\(name)\" has no value") }
        return (name, String(text[start..<end]), value)
    }

    static func parseArch(_ text: String) throws(LineError) -> AuditArch {
        switch text {
        case "b64": return .native
        case "b32":
            guard AuditArch.native == .x86_64 else { throw LineError(reason: "arch=b32 has no 32-bit ABI on this machine") }
            return .i386
        case "x86_64": return .x86_64
        case "i386", "i686": return .i386
        case "aarch64": return .aarch64
        default:
            let hex = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
            if let v = UInt32(hex, radix: 16), v & 0x8000_0000 != 0 || v & 0x4000_0000 != 0 { return AuditArch(rawValue: v) }
            throw LineError(reason: "unknown arch \"\(text)\"; use b64, b32, x86_64, i386 or aarch64")
        }
    }

    static func syscallNumber(_ name: String, arch: AuditArch) throws(LineError) -> Int {
        if let n = Int(name), n >= 0, n < 2032 { return n }
        if let n = arch.syscallNumber(name) { return n }
        var known: [String] = []
        for n in 0..<1024 { if let s = arch.syscallName(n) { known.append(s) } }
        var reason = "unknown syscall \"\(name)\" for \(arch.name)"
        if let s = suggestion(for: name, among: known) { reason += "; did you mean \"\(s)\"?" }
        throw LineError(reason: reason)
    }

    static func parseNumber(_ name: String, _ text: String, arch: AuditArch) throws(LineError) -> UInt32 {
        switch name {
        case "arch": return arch.rawValue
        case "msgtype":
            if let t = AuditRecordType(name: text) { return UInt32(t.rawValue) }
            throw LineError(reason: "unknown message type \"\(text)\"")
        case "success":
            if text == "yes" || text == "1" { return 1 }
            if text == "no" || text == "0" { return 0 }
            throw LineError(reason: "success takes yes/no or 1/0, not \"\(text)\"")
        case "perm":
            return try parsePermission(text)
        case "auid", "loginuid", "uid", "euid", "suid", "fsuid", "obj_uid", "sessionid":
            if text == "unset" || text == "-1" { return UInt32.max }
        default: break
        }
        if text.hasPrefix("0x"), let v = UInt32(text.dropFirst(2), radix: 16) { return v }
        if let v = UInt32(text) { return v }
        if let v = Int32(text) { return UInt32(bitPattern: v) }
        throw LineError(reason: "field \"\(name)\" takes a number, not \"\(text)\"")
    }

    /// The closest known word within two edits, for "did you mean".
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        var best: (String, Int)?
        for c in candidates.sorted() {
            let d = editDistance(Array(word), Array(c))
            if d <= 2, best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

/// The contid conditions of the loaded rules, by key: an event whose key names
/// such a rule is written only when its task's chain satisfies all of them.
public struct ContainerRuleFilter: Sendable {
    public private(set) var byKey: [String: [[ContainerPredicate]]] = [:]
    /// Rules without contid conditions, by key: for a key that also has contid rules
    /// each is an empty alternative (it admits every chain).
    private var plainRules: [String: Int] = [:]
    public init() {}

    public mutating func add(_ rule: ParsedRule) {
        guard let key = rule.key else { return }
        if rule.contid.isEmpty {
            plainRules[key, default: 0] += 1
            if byKey[key] != nil { byKey[key]!.append([]) }
            return
        }
        if byKey[key] == nil {
            byKey[key] = Array(repeating: [], count: plainRules[key] ?? 0)
        }
        byKey[key]!.append(rule.contid)
    }

    public var isEmpty: Bool { byKey.isEmpty }

    /// True when the event may be written: its key has no contid rule, or one of
    /// the rules with that key matches the chain.
    public func admits(key: String?, chain: ContainerChain) -> Bool {
        guard let key, let alternatives = byKey[key] else { return true }
        return alternatives.contains { all in all.allSatisfy { $0.matches(chain) } }
    }
}
