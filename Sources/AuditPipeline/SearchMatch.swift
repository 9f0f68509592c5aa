// Whether one event matches a query, decided as ausearch decides it: the values
// it extracts from each record (audit-userspace src/ausearch-parse.c,
// extract_search_items: parse_syscall, parse_task_info, parse_user,
// parse_simple_message, parse_daemon1, parse_login of 3.0.9, the version Debian ships), found the way it finds them (the first
// `name=` after the previous field read, by substring), later records overriding
// earlier ones, and a record it cannot parse making the whole event unmatchable.
// Only the values the query asks for are read, as ausearch does, since what it
// reads moves where it looks next.

import AuditCodec
import ContainerEngine

/// One record of an event: its whole line and the message ausearch parses (the line up to 0x1D).
public struct SearchRecord {
    public var line: UnsafeRawBufferPointer
    public var messageLength: Int
    public var type: AuditRecordType
    public init(line: UnsafeRawBufferPointer, messageLength: Int, type: AuditRecordType) {
        self.line = line
        self.messageLength = messageLength
        self.type = type
    }
    @inline(__always) var message: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: line[0..<messageLength]) }
}

/// The values ausearch's match() compares (search_items), unset as ausearch leaves them.
struct AusearchItems {
    var pid: UInt64? = nil
    var uid: UInt64? = nil
    var euid: UInt64? = nil
    var loginuid: UInt64? = nil
    var success: UInt64? = nil   // 0 failed, 1 success (S_FAILED, S_SUCCESS), others as strtoul read them
    var syscall: UInt64? = nil
    var comm: [UInt8]? = nil
    var exe: [UInt8]? = nil
    var keys: [[UInt8]] = []
    var hasKeyList = false
}

public struct SearchMatcher {
    public let query: SearchQuery
    let wantPid, wantUID, wantEUID, wantAUID, wantSuccess, wantKey, wantComm, wantExe: Bool

    public init(query: SearchQuery) {
        self.query = query
        wantPid = query.pid != nil
        wantUID = query.uid != nil || query.anyUID != nil
        wantEUID = query.euid != nil || query.anyUID != nil
        wantAUID = query.auid != nil || query.anyUID != nil
        wantSuccess = query.success != nil
        wantKey = query.key != nil
        wantComm = query.comm != nil
        wantExe = query.exe != nil
    }

    /// The ausearch part of the query (everything but containers and labels) on one event.
    public func matches(_ records: UnsafeBufferPointer<SearchRecord>, seconds: UInt64) -> Bool {
        if let since = query.since, seconds < since { return false }
        if let until = query.until, seconds > until { return false }
        if !query.types.isEmpty {
            guard records.contains(where: { r in query.types.contains(r.type) }) else { return false }
        }
        // ausearch reads every record even when no option needs a value: a record its parser
        // rejects (a SYSCALL without a0=) drops the event from every result.
        var s = AusearchItems()
        for r in records {
            guard extract(r, into: &s) else { return false }
        }
        if let a = query.anyUID {
            guard s.uid == a || s.euid == a || s.loginuid == a else { return false }
        } else {
            if let u = query.uid, s.uid != u { return false }
            if let u = query.euid, s.euid != u { return false }
            if let u = query.auid, s.loginuid != u { return false }
        }
        if let p = query.pid, s.pid != p { return false }
        if let n = query.syscall, s.syscall != UInt64(n) { return false }
        if let want = query.success, s.success != (want ? 1 : 0) { return false }
        if let exe = query.exe { guard let v = s.exe, contains(v, exe) else { return false } }
        if let comm = query.comm { guard let v = s.comm, contains(v, comm) else { return false } }
        if let key = query.key {
            guard s.hasKeyList, s.keys.contains(where: { contains($0, key) }) else { return false }
        }
        return true
    }

    func contains(_ hay: [UInt8], _ needle: [UInt8]) -> Bool {
        if needle.isEmpty { return true }
        return hay.withUnsafeBytes { h in needle.withUnsafeBytes { FieldScanner.search($0, in: h) } } != nil
    }

    /// false: ausearch's parser returned an error for this record (the event is skipped).
    func extract(_ r: SearchRecord, into s: inout AusearchItems) -> Bool {
        let v = r.type.rawValue
        let m = r.message
        switch v {
        case 1300: return parseSyscall(m, isSyscall: true, &s)  // 3.0.9 has no parser for URINGOP (1336)
        case 1005, 1100...1106, 1108...1199, 2100...2999: return parseUser(m, &s)
        case 1006: return parseLogin(m, &s)
        case 1305: return parseSimpleMessage(m, isConfigChange: true, &s)
        case 1403...1418: return parseSimpleMessage(m, isConfigChange: false, &s)  // MAC_POLICY_LOAD...MAC_UNLBL_STCDEL
        case 1200, 1201, 1202, 1203, 1204, 1208: return parseDaemon1(m, &s)
        default: return true
        }
    }

    // MARK: ausearch's parsers, on bytes

    /// strstr from `from`: the offset of `needle`, or nil.
    @inline(__always)
    func find(_ needle: StaticString, _ m: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < m.count else { return nil }
        let n = UnsafeRawBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount)
        return FieldScanner.search(n, in: UnsafeRawBufferPointer(rebasing: m[from...])).map { $0 + from }
    }

    @inline(__always)
    func indexOf(_ c: UInt8, _ m: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        while i < m.count { if m[i] == c { return i }; i += 1 }
        return nil
    }

    /// strtoul(ptr, NULL, 10): leading digits (none: 0).
    @inline(__always)
    func strtoul(_ m: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        var i = at, v: UInt64 = 0
        while i < m.count, m[i] &- UInt8(ascii: "0") < 10 { v = v &* 10 &+ UInt64(m[i] &- UInt8(ascii: "0")); i += 1 }
        return v
    }

    /// A number field read the common way: found from `term`, value up to a space that must follow.
    /// Returns false when absent (if required) or no space follows; moves term to that space.
    func number(_ name: StaticString, _ m: UnsafeRawBufferPointer, _ term: inout Int, required: Bool,
                skipAfterA: Bool = false, into slot: inout UInt64?) -> Bool {
        var from = term
        var at: Int?
        while true {
            at = find(name, m, from: from)
            guard let a = at, skipAfterA, a > 0, m[a - 1] == UInt8(ascii: "a") else { break }
            from = a + 1
        }
        guard let a = at else { return !required }
        let ptr = a + name.utf8CodeUnitCount
        guard let sp = indexOf(UInt8(ascii: " "), m, from: ptr) else { return false }
        slot = strtoul(m, ptr)
        term = sp
        return true
    }

    /// A string value: `"quoted"` to its closing quote, else hex (unescape; `(null)` kept as written).
    func stringValue(_ m: UnsafeRawBufferPointer, at: Int) -> (value: [UInt8], end: Int)? {
        if at < m.count, m[at] == UInt8(ascii: "\"") {
            guard let q = indexOf(UInt8(ascii: "\""), m, from: at + 1) else { return nil }
            return (Array(m[(at + 1)..<q]), q)
        }
        return unescape(m, at: at)
    }

    /// ausearch-lookup.c unescape(): `(...)` as written, else the hex digits decoded (nil when fewer than 2).
    func unescape(_ m: UnsafeRawBufferPointer, at: Int) -> (value: [UInt8], end: Int)? {
        if at < m.count, m[at] == UInt8(ascii: "(") {
            guard let c = indexOf(UInt8(ascii: ")"), m, from: at) else { return nil }
            return (Array(m[at...c]), c + 1)
        }
        var e = at
        while e < m.count, AuditText.hexValue(m[e]) != nil { e += 1 }
        guard e - at >= 2 else { return nil }
        var out: [UInt8] = []
        var i = at
        while i + 1 < e {
            out.append(AuditText.hexValue(m[i])! << 4 | AuditText.hexValue(m[i + 1])!)
            i += 2
        }
        if let z = out.firstIndex(of: 0) { out.removeSubrange(z...) }
        return (out, e)
    }

    func appendKeys(_ m: UnsafeRawBufferPointer, at: Int, _ s: inout AusearchItems) -> Bool {
        s.hasKeyList = true
        if at < m.count, m[at] == UInt8(ascii: "\"") {
            guard let q = indexOf(UInt8(ascii: "\""), m, from: at + 1) else { return false }
            s.keys.append(Array(m[(at + 1)..<q]))
            return true
        }
        guard let (v, _) = unescape(m, at: at) else { return false }
        // Several keys are joined by 0x01 (AUDIT_KEY_SEPARATOR).
        for k in v.split(separator: 0x01) { s.keys.append(Array(k)) }
        return true
    }

    func parseSyscall(_ m: UnsafeRawBufferPointer, isSyscall: Bool, _ s: inout AusearchItems) -> Bool {
        var term = 0
        guard let sc = isSyscall ? find("syscall=", m, from: 0) : find("uring_op=", m, from: 0) else { return false }
        let ptr = sc + (isSyscall ? 8 : 9)
        guard let sp = indexOf(UInt8(ascii: " "), m, from: ptr) else { return false }
        s.syscall = strtoul(m, ptr)
        term = sp
        if wantSuccess, let su = find("success=", m, from: term) {
            let p = su + 8
            guard let e = indexOf(UInt8(ascii: " "), m, from: p) else { return false }
            s.success = (e - p == 3 && m[p] == UInt8(ascii: "y") && m[p + 1] == UInt8(ascii: "e") && m[p + 2] == UInt8(ascii: "s")) ? 1 : 0
            term = e
        }
        if isSyscall {
            for name: StaticString in ["a0=", "a1="] {
                guard let a = find(name, m, from: term) else { return false }
                guard let e = indexOf(UInt8(ascii: " "), m, from: a + 3) else { return false }
                term = e
            }
        }
        guard parseTaskInfo(m, &s) else { return false }
        if wantKey, let k = find("key=", m, from: term) {
            return appendKeys(m, at: k + 4, &s)
        }
        return true
    }

    func parseTaskInfo(_ m: UnsafeRawBufferPointer, _ s: inout AusearchItems) -> Bool {
        var term = 0
        if wantPid { guard number(" pid=", m, &term, required: true, into: &s.pid) else { return false } }
        if wantAUID {
            if find("auid=", m, from: term) != nil {
                guard number("auid=", m, &term, required: true, into: &s.loginuid) else { return false }
            } else {
                guard number("loginuid=", m, &term, required: true, into: &s.loginuid) else { return false }
            }
        }
        if wantUID { guard number("uid=", m, &term, required: true, skipAfterA: true, into: &s.uid) else { return false } }
        if wantEUID { guard number("euid=", m, &term, required: true, into: &s.euid) else { return false } }
        if wantComm {
            guard let c = find("comm=", m, from: term), let (v, e) = stringValue(m, at: c + 5) else { return false }
            s.comm = v
            term = e
        }
        if wantExe {
            guard let x = find("exe=", m, from: 0), let (v, _) = stringValue(m, at: x + 4) else { return false }
            s.exe = v
        }
        if wantSuccess, let r = find("res=", m, from: term) {
            s.success = strtoul(m, r + 4)
        }
        return true
    }

    func parseUser(_ m: UnsafeRawBufferPointer, _ s: inout AusearchItems) -> Bool {
        var term = 0
        if wantPid { guard number("pid=", m, &term, required: true, into: &s.pid) else { return false } }
        if wantUID {
            var probe = term
            var uid: UInt64?
            guard number("uid=", m, &probe, required: true, into: &uid) else { return false }
            // parse_user reads its first uid= here (auid too), then the one it means below.
            s.uid = uid
            term = probe
        }
        if wantAUID {
            if find("auid=", m, from: term) != nil {
                guard number("auid=", m, &term, required: true, into: &s.loginuid) else { return false }
            } else {
                guard number("loginuid=", m, &term, required: true, into: &s.loginuid) else { return false }
            }
        }
        if wantUID {
            // "some records the second uid is what we want": auid= skipped, suid=/ouid= end the search.
            var from = term
            while let u = find("uid=", m, from: from) {
                let before = u > 0 ? m[u - 1] : 0
                if before == UInt8(ascii: "a") { from = u + 1; continue }
                if before == UInt8(ascii: "s") || before == UInt8(ascii: "u") { break }
                guard before == UInt8(ascii: "'") || before == UInt8(ascii: " ") else { return false }
                var e = u + 4
                while e < m.count, m[e] &- UInt8(ascii: "0") < 10 { e += 1 }
                guard e > u + 4 else { return false }
                s.uid = strtoul(m, u + 4)
                term = e
                break
            }
        }
        let mptr = term
        if wantComm, let c = find("comm=", m, from: mptr) {
            guard let (v, _) = stringValue(m, at: c + 5) else { return false }
            s.comm = v
        }
        if wantExe, let x = find("exe=", m, from: mptr) {
            guard let (v, _) = stringValue(m, at: x + 4) else { return false }
            s.exe = v
        }
        if wantSuccess {
            if let r = find("res=", m, from: mptr) {
                guard indexOf(UInt8(ascii: "'"), m, from: r + 4) != nil else { return false }
                s.success = startsWith(m, r + 4, "failed") ? 0 : 1
            } else if let r = find("result=", m, from: mptr) {
                guard let e = indexOf(UInt8(ascii: ")"), m, from: r + 7) else { return false }
                let v = Array(m[(r + 7)..<e])
                s.success = v.count == 7 && String(decoding: v, as: UTF8.self).lowercased() == "success" ? 1 : 0
            }
        }
        return true
    }

    func parseLogin(_ m: UnsafeRawBufferPointer, _ s: inout AusearchItems) -> Bool {
        var term = 0
        if wantPid { guard number("pid=", m, &term, required: true, into: &s.pid) else { return false } }
        if wantUID { guard number("uid=", m, &term, required: true, into: &s.uid) else { return false } }
        if wantAUID {
            let ptr: Int
            if let a = find("new auid=", m, from: term) { ptr = a + 9 } else if let a = find(" auid=", m, from: term) { ptr = a + 6 } else if let a = find("new loginuid=", m, from: term) { ptr = a + 13 } else { return false }
            s.loginuid = strtoul(m, ptr)
            term = indexOf(UInt8(ascii: " "), m, from: ptr) ?? m.count
        }
        if wantSuccess {
            if let r = find("res=", m, from: min(term, m.count)) { s.success = strtoul(m, r + 4) } else { s.success = 1 }
        }
        return true
    }

    func parseSimpleMessage(_ m: UnsafeRawBufferPointer, isConfigChange: Bool, _ s: inout AusearchItems) -> Bool {
        var term = 0
        if wantAUID {
            if let a = find("auid=", m, from: 0) {
                s.loginuid = strtoul(m, a + 5)
                term = indexOf(UInt8(ascii: " "), m, from: a + 5) ?? (a + 5)
            } else if !isConfigChange {
                return false
            }
        }
        if wantKey, let k = find("key=", m, from: term) {
            let p = k + 4
            if p < m.count, m[p] == UInt8(ascii: "\"") {
                guard let q = indexOf(UInt8(ascii: "\""), m, from: p + 1) else { return false }
                s.hasKeyList = true
                s.keys.append(Array(m[(p + 1)..<q]))
                term = q
            } else {
                guard appendKeys(m, at: p, &s) else { return false }
            }
        }
        if isConfigChange { s.success = 1 }
        if wantSuccess, let r = find("res=", m, from: term) {
            s.success = strtoul(m, r + 4)
        }
        return true
    }

    func parseDaemon1(_ m: UnsafeRawBufferPointer, _ s: inout AusearchItems) -> Bool {
        let mptr = indexOf(UInt8(ascii: ")"), m, from: 0) ?? 0
        var term = mptr
        if wantAUID {
            guard let a = find("auid=", m, from: mptr), let e = indexOf(UInt8(ascii: " "), m, from: a + 5) else { return false }
            s.loginuid = strtoul(m, a + 5)
            term = e
        }
        if wantPid {
            guard let p = find("pid=", m, from: term), let e = indexOf(UInt8(ascii: " "), m, from: p + 4) else { return false }
            s.pid = strtoul(m, p + 4)
            term = e
        }
        if wantUID, let u = find(" uid=", m, from: mptr) {
            guard let e = indexOf(UInt8(ascii: " "), m, from: u + 5) else { return false }
            s.uid = strtoul(m, u + 5)
            term = e
        }
        if wantSuccess, let r = find("res=", m, from: mptr) {
            var e = r + 4
            while e < m.count, (m[e] | 0x20) &- UInt8(ascii: "a") < 26 { e += 1 }
            guard e > r + 4 else { return false }
            s.success = startsWith(m, r + 4, "failed") ? 0 : 1
        }
        _ = term
        return true
    }

    func startsWith(_ m: UnsafeRawBufferPointer, _ at: Int, _ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard at + n <= m.count else { return false }
        for i in 0..<n where m[at + i] != word.utf8Start[i] { return false }
        return true
    }
}
