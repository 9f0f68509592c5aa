// The registration socket's protocol (SPEC §4, §9): one request per SOCK_SEQPACKET
// message, text; replies `ok ...` or `err ERRNO message`. A `ps` request is
// answered by `info` messages (each live container's labels), `row` messages and
// a closing `ok N`. Who asks is never in the request: the daemon takes it from
// the kernel.
//
// The target: `set`, `get` and `capcontid` name it by PID. A client should attach
// a pidfd of the target (pidfd_open in its own pid namespace) to the message with
// SCM_RIGHTS; then the daemon takes the target from the pidfd (its pid in the
// daemon's namespace from /proc/self/fdinfo, and the pidfd pins it, so PID reuse
// between request and check cannot move an ID), and PID is the client's view of
// it, used in messages only. Without a pidfd, PID names the target in the daemon's
// pid namespace and is pinned when the request arrives: programs that speak the
// protocol from the daemon's pid namespace may do so, accepting the race between
// choosing the pid and sending it.

import ContainerEngine

public enum RegistrationRequest: Hashable, Sendable, CustomStringConvertible {
    /// `set PID ID [new] [parent]`, then, when there are labels, a newline and
    /// `k=v,k=v` (the rest of the message, verbatim). `forParent`: act for the
    /// requester's parent, as `echo ID > /proc/PID/audit_containerid` from a shell.
    /// `new`: create a new container only (a live ID is ENOTUNIQ whoever owns it).
    /// `id` is the text as given (the daemon parses it, so an unset spelling is
    /// refused by the check ladder in its order, after ESRCH).
    case set(pid: Int32, id: String, forParent: Bool, new: Bool = false, labels: ContainerLabels = ContainerLabels())
    /// `get PID`: the process's chain, `-1` when unset.
    case get(pid: Int32)
    /// `capcontid PID 0|1 [parent]`.
    case capContID(pid: Int32, value: Bool, forParent: Bool)
    /// `ps`: every tracked process with its chain, and every live container's labels.
    case ps
    /// `status`: the daemon's counters (losses included).
    case status

    /// The largest request message: the verb line and 4 KiB of labels.
    public static let maxBytes = 512 + ContainerLabels.maxBytes

    public var description: String { String(decoding: encoded(), as: UTF8.self) }

    /// The target's pid as the request names it (nil for ps and status).
    public var pid: Int32? {
        switch self {
        case let .set(pid, _, _, _, _), let .get(pid), let .capContID(pid, _, _): return pid
        case .ps, .status: return nil
        }
    }

    public func encoded() -> [UInt8] {
        let text: String
        switch self {
        case let .set(pid, id, parent, new, labels):
            text = "set \(pid) \(id)" + (new ? " new" : "") + (parent ? " parent" : "")
                + (labels.isEmpty ? "" : "\n" + labels.encoded)
        case let .get(pid): text = "get \(pid)"
        case let .capContID(pid, value, parent): text = "capcontid \(pid) \(value ? 1 : 0)" + (parent ? " parent" : "")
        case .ps: text = "ps"
        case .status: text = "status"
        }
        return Array(text.utf8)
    }

    /// Parses one request message; the error says what is wrong with it (labels that
    /// break SPEC §6's rules carry their errno, EINVAL or E2BIG).
    public static func decode(_ bytes: some Collection<UInt8>) throws(RegistrationProtocolError) -> RegistrationRequest {
        guard bytes.count <= maxBytes else {
            throw .init("request of \(bytes.count) bytes; at most \(maxBytes) (labels: at most \(ContainerLabels.maxBytes))", errno: "E2BIG")
        }
        guard let text = String(validating: Array(bytes), as: UTF8.self) else { throw .init("request is not UTF-8") }
        let line: Substring, labelText: Substring?
        if let newline = text.firstIndex(of: "\n") {
            line = text[..<newline]
            labelText = text[text.index(after: newline)...]
        } else {
            (line, labelText) = (text[...], nil)
        }
        guard line.utf8.count <= 512 else { throw .init("request line of \(line.utf8.count) bytes; at most 512") }
        let words = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let verb = words.first else { throw .init("empty request") }
        if labelText != nil, verb != "set" { throw .init("only set carries labels (after a newline)") }
        func pid(_ s: String) throws(RegistrationProtocolError) -> Int32 {
            guard let p = Int32(s), p > 0 else { throw .init("\"\(s)\" is not a process ID") }
            return p
        }
        /// The flags after the fixed words, each at most once, from `allowed`.
        func flags(_ index: Int, _ allowed: Set<String>) throws(RegistrationProtocolError) -> Set<String> {
            var found = Set<String>()
            for word in words.dropFirst(index) {
                guard allowed.contains(word), found.insert(word).inserted else {
                    throw .init("unexpected \"\(word.prefix(32))\" after \(verb)")
                }
            }
            return found
        }
        switch verb {
        case "set":
            guard words.count >= 3 else { throw .init("usage: set PID ID [new] [parent] (then a newline and k=v,k=v labels)") }
            let given = try flags(3, ["new", "parent"])
            var labels = ContainerLabels()
            if let labelText {
                do { labels = try ContainerLabels(parsing: String(labelText)) } catch {
                    throw .init(error.reason, errno: error.errno.name)
                }
            }
            return .set(pid: try pid(words[1]), id: words[2], forParent: given.contains("parent"), new: given.contains("new"),
                        labels: labels)
        case "get":
            guard words.count == 2 else { throw .init("usage: get PID") }
            return .get(pid: try pid(words[1]))
        case "capcontid":
            guard words.count >= 3, words[2] == "0" || words[2] == "1" else { throw .init("usage: capcontid PID 0|1 [parent]") }
            return .capContID(pid: try pid(words[1]), value: words[2] == "1", forParent: try flags(3, ["parent"]).contains("parent"))
        case "ps":
            guard words.count == 1 else { throw .init("usage: ps") }
            return .ps
        case "status":
            guard words.count == 1 else { throw .init("usage: status") }
            return .status
        default:
            throw .init("unknown request \"\(verb.prefix(32))\"; expected set, get, capcontid, ps or status")
        }
    }
}

/// A request the daemon cannot read.
public struct RegistrationProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    public var reason: String
    /// The errno name the reply carries: EINVAL, or E2BIG for labels over 4 KiB.
    public var errno: String
    public init(_ reason: String, errno: String = "EINVAL") {
        self.reason = reason
        self.errno = errno
    }
    public var description: String { "\(errno): \(reason)" }
}

/// A reply message.
public enum RegistrationReply: Hashable, Sendable, CustomStringConvertible {
    /// `ok TEXT` (`ok 7` after a set, the chain after get, `ok 12` closing a ps listing).
    case ok(String)
    /// `err ERRNO message`: `err EBUSY process 812 has 1 child; ...`.
    case error(errno: String, message: String)
    /// `row PID PPID CHAIN CAPCONTID COMM`: one process of a ps listing.
    case row(ProcessRow)
    /// `info ID k=v,k=v`: a live container's labels, in a ps listing before the rows.
    case info(id: String, labels: ContainerLabels)

    public var description: String { String(decoding: encoded(), as: UTF8.self) }

    public func encoded() -> [UInt8] {
        switch self {
        case .ok(let text): return Array((text.isEmpty ? "ok" : "ok \(text)").utf8)
        case let .error(errno, message): return Array("err \(errno) \(message)".utf8)
        case .row(let r): return Array("row \(r.pid) \(r.ppid) \(r.chain) \(r.capContID ? 1 : 0) \(r.comm)".utf8)
        case let .info(id, labels): return Array("info \(id) \(labels.encoded)".utf8)
        }
    }

    public static func decode(_ bytes: some Collection<UInt8>) throws(RegistrationProtocolError) -> RegistrationReply {
        let text = String(decoding: Array(bytes), as: UTF8.self)
        if text == "ok" { return .ok("") }
        if text.hasPrefix("ok ") { return .ok(String(text.dropFirst(3))) }
        if text.hasPrefix("err ") {
            let rest = text.dropFirst(4)
            let errno = rest.prefix { $0 != " " }
            guard !errno.isEmpty else { throw .init("error reply without an errno name") }
            return .error(errno: String(errno), message: String(rest.dropFirst(errno.count).drop { $0 == " " }))
        }
        if text.hasPrefix("row ") {
            let parts = text.dropFirst(4).split(separator: " ", maxSplits: 4, omittingEmptySubsequences: false)
            guard parts.count >= 4, let pid = Int32(parts[0]), let ppid = Int32(parts[1]),
                parts[3] == "0" || parts[3] == "1"
            else { throw .init("malformed row \"\(text.prefix(80))\"") }
            return .row(ProcessRow(pid: pid, ppid: ppid, chain: String(parts[2]), capContID: parts[3] == "1",
                                   comm: parts.count > 4 ? String(parts[4]) : ""))
        }
        if text.hasPrefix("info ") {
            let rest = text.dropFirst(5)
            let id = rest.prefix { $0 != " " }
            guard !id.isEmpty else { throw .init("info reply without a container ID") }
            do {
                return .info(id: String(id), labels: try ContainerLabels(parsing: String(rest.dropFirst(id.count).dropFirst())))
            } catch {
                throw .init("malformed labels in \"\(text.prefix(80))\": \(error.reason)")
            }
        }
        throw .init("unknown reply \"\(text.prefix(80))\"")
    }
}

/// One line of `contid ps`.
public struct ProcessRow: Hashable, Sendable {
    public var pid: Int32
    public var ppid: Int32
    /// `4,^2,^1` or `-1`.
    public var chain: String
    public var capContID: Bool
    public var comm: String
    public init(pid: Int32, ppid: Int32, chain: String, capContID: Bool, comm: String) {
        self.pid = pid
        self.ppid = ppid
        self.chain = chain
        self.capContID = capContID
        self.comm = comm
    }
}

extension ProcessRow {
    /// The innermost container's ID (`4` of `4,^2,^1`), nil when unset.
    public var innermostID: String? {
        chain == "-1" ? nil : String(chain.prefix { $0 != "," })
    }

    /// `contid ps --tree`: every process under its parent, indented, with its chain.
    /// Processes whose parent is not listed are roots. A process whose container
    /// differs from its parent's (a container's first process) shows that
    /// container's labels, `{k=v,k=v}`.
    public static func tree(_ rows: [ProcessRow], labels: [String: ContainerLabels] = [:]) -> [String] {
        let pids = Set(rows.map(\.pid))
        let chainOf = Dictionary(rows.map { ($0.pid, $0.chain) }, uniquingKeysWith: { a, _ in a })
        var children: [Int32: [ProcessRow]] = [:]
        var roots: [ProcessRow] = []
        for r in rows.sorted(by: { $0.pid < $1.pid }) {
            if r.ppid != r.pid, pids.contains(r.ppid) { children[r.ppid, default: []].append(r) } else { roots.append(r) }
        }
        var lines: [String] = []
        func walk(_ r: ProcessRow, _ prefix: String, _ last: Bool, _ top: Bool) {
            let branch = top ? "" : (last ? "`-- " : "|-- ")
            var line = "\(prefix)\(branch)\(r.pid) \(r.comm) [\(r.chain)]\(r.capContID ? " capcontid" : "")"
            if let id = r.innermostID, let l = labels[id], !l.isEmpty, chainOf[r.ppid] != r.chain { line += " {\(l.encoded)}" }
            lines.append(line)
            let kids = children[r.pid] ?? []
            let childPrefix = top ? "" : prefix + (last ? "    " : "|   ")
            for (i, k) in kids.enumerated() { walk(k, childPrefix, i == kids.count - 1, false) }
        }
        for r in roots { walk(r, "", true, true) }
        return lines
    }
}
