// The registration socket's protocol (SPEC §4): one request per SOCK_SEQPACKET
// message, text, one line; replies `ok ...` or `err ERRNO message`. A `ps`
// request is answered by `row` messages and a closing `ok N`.
// Who asks is never in the request: the daemon takes it from the kernel.

import ContainerEngine

public enum RegistrationRequest: Hashable, Sendable, CustomStringConvertible {
    /// `set PID ID [parent]`: register `id` for `pid`. `forParent`: act for the
    /// requester's parent, as `echo ID > /proc/PID/audit_containerid` from a shell.
    /// `id` is the text as given (the daemon parses it, so an unset spelling is
    /// refused by the check ladder in its order, after ESRCH).
    case set(pid: Int32, id: String, forParent: Bool)
    /// `get PID`: the process's chain, `-1` when unset.
    case get(pid: Int32)
    /// `capcontid PID 0|1 [parent]`.
    case capContID(pid: Int32, value: Bool, forParent: Bool)
    /// `ps`: every tracked process with its chain.
    case ps
    /// `status`: the daemon's counters (losses included).
    case status

    public var description: String { String(decoding: encoded(), as: UTF8.self) }

    public func encoded() -> [UInt8] {
        let text: String
        switch self {
        case let .set(pid, id, parent): text = "set \(pid) \(id)" + (parent ? " parent" : "")
        case let .get(pid): text = "get \(pid)"
        case let .capContID(pid, value, parent): text = "capcontid \(pid) \(value ? 1 : 0)" + (parent ? " parent" : "")
        case .ps: text = "ps"
        case .status: text = "status"
        }
        return Array(text.utf8)
    }

    /// Parses one request message; the error says what is wrong with it.
    public static func decode(_ bytes: some Collection<UInt8>) throws(RegistrationProtocolError) -> RegistrationRequest {
        guard bytes.count <= 512 else { throw .init("request of \(bytes.count) bytes; at most 512") }
        guard let text = String(validating: Array(bytes), as: UTF8.self) else { throw .init("request is not UTF-8") }
        let words = text.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        guard let verb = words.first else { throw .init("empty request") }
        func pid(_ s: String) throws(RegistrationProtocolError) -> Int32 {
            guard let p = Int32(s), p > 0 else { throw .init("\"\(s)\" is not a process ID") }
            return p
        }
        func parentFlag(_ index: Int) throws(RegistrationProtocolError) -> Bool {
            guard words.count > index else { return false }
            guard words.count == index + 1, words[index] == "parent" else {
                throw .init("unexpected \"\(words[index...].joined(separator: " "))\" after \(verb)")
            }
            return true
        }
        switch verb {
        case "set":
            guard words.count >= 3 else { throw .init("usage: set PID ID [parent]") }
            return .set(pid: try pid(words[1]), id: words[2], forParent: try parentFlag(3))
        case "get":
            guard words.count == 2 else { throw .init("usage: get PID") }
            return .get(pid: try pid(words[1]))
        case "capcontid":
            guard words.count >= 3, words[2] == "0" || words[2] == "1" else { throw .init("usage: capcontid PID 0|1 [parent]") }
            return .capContID(pid: try pid(words[1]), value: words[2] == "1", forParent: try parentFlag(3))
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
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// A reply message.
public enum RegistrationReply: Hashable, Sendable, CustomStringConvertible {
    /// `ok TEXT` (`ok 7` after a set, the chain after get, `ok 12` closing a ps listing).
    case ok(String)
    /// `err ERRNO message`: `err EBUSY process 812 has 1 child; ...`.
    case error(errno: String, message: String)
    /// `row PID PPID CHAIN CAPCONTID COMM`: one process of a ps listing.
    case row(ProcessRow)

    public var description: String { String(decoding: encoded(), as: UTF8.self) }

    public func encoded() -> [UInt8] {
        switch self {
        case .ok(let text): return Array((text.isEmpty ? "ok" : "ok \(text)").utf8)
        case let .error(errno, message): return Array("err \(errno) \(message)".utf8)
        case .row(let r): return Array("row \(r.pid) \(r.ppid) \(r.chain) \(r.capContID ? 1 : 0) \(r.comm)".utf8)
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
    /// `contid ps --tree`: every process under its parent, indented, with its chain.
    /// Processes whose parent is not listed are roots.
    public static func tree(_ rows: [ProcessRow]) -> [String] {
        let pids = Set(rows.map(\.pid))
        var children: [Int32: [ProcessRow]] = [:]
        var roots: [ProcessRow] = []
        for r in rows.sorted(by: { $0.pid < $1.pid }) {
            if r.ppid != r.pid, pids.contains(r.ppid) { children[r.ppid, default: []].append(r) } else { roots.append(r) }
        }
        var lines: [String] = []
        func walk(_ r: ProcessRow, _ prefix: String, _ last: Bool, _ top: Bool) {
            let branch = top ? "" : (last ? "`-- " : "|-- ")
            lines.append("\(prefix)\(branch)\(r.pid) \(r.comm) [\(r.chain)]\(r.capContID ? " capcontid" : "")")
            let kids = children[r.pid] ?? []
            let childPrefix = top ? "" : prefix + (last ? "    " : "|   ")
            for (i, k) in kids.enumerated() { walk(k, childPrefix, i == kids.count - 1, false) }
        }
        for r in roots { walk(r, "", true, true) }
        return lines
    }
}
