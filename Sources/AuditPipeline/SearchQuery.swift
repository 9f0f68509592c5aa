// What `contid search` and `contid report` select, with ausearch's meanings
// (audit-userspace src/ausearch-options.c, ausearch-match.c): every option given
// must hold for an event (they are ANDed), `-k`, `--exe` and `--comm` match by
// substring, `-ua` matches uid, euid or auid, the time range is compared in whole
// seconds of the event's stamp, both ends inclusive.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec
import ContainerEngine

public struct SearchQuery: Sendable {
    /// `-m`: the event has a record of one of these types.
    public var types: [AuditRecordType] = []
    /// `-k`: one of the event's keys contains this.
    public var key: [UInt8]?
    public var pid: UInt64?
    public var uid: UInt64?
    public var euid: UInt64?
    public var auid: UInt64?
    /// `-ua`: uid, euid or auid is this.
    public var anyUID: UInt64?
    public var exe: [UInt8]?
    public var comm: [UInt8]?
    public var success: Bool?
    public var syscall: Int?
    /// Seconds since the epoch, inclusive.
    public var since: UInt64?
    public var until: UInt64?
    /// `--contid`: the event's innermost container (with `nested`, any container of its chain).
    public var contid: ContainerID?
    public var nested = false
    /// `--label k=v`: the event's container carried this label when the event happened.
    public var label: (key: String, value: String)?

    public init() {}

    /// True when no option selects anything: every event is in the result.
    public var selectsAll: Bool {
        types.isEmpty && key == nil && pid == nil && uid == nil && euid == nil && auid == nil && anyUID == nil
            && exe == nil && comm == nil && success == nil && syscall == nil && since == nil && until == nil
            && contid == nil && label == nil
    }

    /// Byte strings of which an event that matches has at least one in some record:
    /// lines holding none are never parsed beyond their header. Empty: every event is a candidate.
    /// The most selective option's strings are taken (options are ANDed, so any one will do).
    public func needles(labelIDs: [[UInt8]] = []) -> [[UInt8]] {
        // A chain names its innermost container after `contid=` (or after a comma, for the
        // later chains of a NETFILTER_PKT list), its parents after `^`.
        func chainNeedles(_ id: [UInt8]) -> [[UInt8]] {
            [Array("contid=".utf8) + id, [UInt8(ascii: ",")] + id] + (nested ? [[UInt8(ascii: "^")] + id] : [])
        }
        if let contid { return chainNeedles(contid.bytes) }
        if label != nil { return labelIDs.isEmpty ? [Array("contid=".utf8)] : labelIDs.flatMap(chainNeedles) }
        if let key {
            // Keys are written quoted, or hex-encoded when several or unsafe (joined by 0x01).
            return [key, Array(AuditText.hex(key).utf8)]
        }
        if let exe { return [exe, Array(AuditText.hex(exe).utf8)] }
        if let comm { return [comm, Array(AuditText.hex(comm).utf8)] }
        if let pid { return [Array("pid=\(pid)".utf8)] }
        for u in [anyUID, uid, euid, auid] { if let u { return [Array("uid=\(u)".utf8)] } }
        if !types.isEmpty, !types.contains(.syscall), !types.contains(.proctitle), !types.contains(.path) {
            var out: [[UInt8]] = []
            for t in types {
                out.append(Array("type=\(t.name) ".utf8))
                if !t.name.hasPrefix("UNKNOWN[") { out.append(Array("type=UNKNOWN[\(t.rawValue)] ".utf8)) }
            }
            return out
        }
        return []
    }
}

/// A `--since`/`--until` value that cannot be read.
public struct SearchTimeError: Error, CustomStringConvertible {
    public var text: String
    public var description: String {
        "\"\(text)\" is not a time: give ISO 8601 (2026-12-02T05:00:00Z, 2026-12-02 05:00, 2026-12-02), "
            + "seconds since the epoch (1795929164), or one of now, recent, boot, today, yesterday, this-week, this-month, this-year"
    }
}

public enum SearchTime {
    /// Seconds since the epoch for `text`, as ausearch reads its words: `recent` is ten minutes
    /// ago, `today` local midnight, `this-week` the local midnight that started the week (Sunday).
    /// Times without an offset are local time.
    public static func parse(_ text: String, now: UInt64, boot: UInt64?) throws(SearchTimeError) -> UInt64 {
        let midnight = localMidnight(now)
        switch text {
        case "now": return now
        case "recent": return now >= 600 ? now - 600 : 0
        case "boot":
            guard let boot else { throw SearchTimeError(text: text) }
            return boot
        case "today": return midnight
        case "yesterday": return midnight >= 86400 ? localMidnight(midnight - 1) : 0
        case "this-week", "week-ago":
            if text == "week-ago" { return midnight >= 7 * 86400 ? localMidnight(midnight - 6 * 86400 - 1) : 0 }
            return startOf(now) { tm in tm.tm_mday -= tm.tm_wday }
        case "this-month": return startOf(now) { tm in tm.tm_mday = 1 }
        case "this-year": return startOf(now) { tm in tm.tm_mday = 1; tm.tm_mon = 0 }
        default: break
        }
        if !text.isEmpty, text.allSatisfy({ $0.isNumber || $0 == "." }) {
            let whole = text.split(separator: ".", omittingEmptySubsequences: false).first ?? ""
            guard let v = UInt64(whole), text.filter({ $0 == "." }).count <= 1 else { throw SearchTimeError(text: text) }
            return v
        }
        return try iso8601(text)
    }

    /// `YYYY-MM-DD`, then optionally `T` or space, `HH:MM[:SS[.fff]]`, then `Z` or `±HH[:MM]`.
    static func iso8601(_ text: String) throws(SearchTimeError) -> UInt64 {
        let b = Array(text.utf8)
        var i = 0
        func number(_ digits: Int) -> Int? {
            guard i + digits <= b.count else { return nil }
            var v = 0
            for k in 0..<digits {
                let d = b[i + k] &- UInt8(ascii: "0")
                guard d < 10 else { return nil }
                v = v * 10 + Int(d)
            }
            i += digits
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let y = number(4), expect("-"), let mo = number(2), expect("-"), let d = number(2),
              (1...12).contains(mo), (1...31).contains(d) else { throw SearchTimeError(text: text) }
        var tm = Glibc.tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(mo - 1)
        tm.tm_mday = Int32(d)
        tm.tm_isdst = -1
        var offset: Int?
        if i < b.count {
            guard expect("T") || expect(" "), let h = number(2), expect(":"), let m = number(2),
                  h < 24, m < 60 else { throw SearchTimeError(text: text) }
            tm.tm_hour = Int32(h)
            tm.tm_min = Int32(m)
            if expect(":") {
                guard let s = number(2), s < 61 else { throw SearchTimeError(text: text) }
                tm.tm_sec = Int32(s)
                if expect(".") { while i < b.count, b[i] &- UInt8(ascii: "0") < 10 { i += 1 } }
            }
            if expect("Z") {
                offset = 0
            } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let oh = number(2) else { throw SearchTimeError(text: text) }
                var om = 0
                if expect(":") || (i < b.count && b[i] != UInt8(ascii: " ")) {
                    guard let v = number(2) else { throw SearchTimeError(text: text) }
                    om = v
                }
                offset = sign * (oh * 3600 + om * 60)
            }
        }
        guard i == b.count else { throw SearchTimeError(text: text) }
        let seconds: Int
        if let offset {
            seconds = Int(timegm(&tm)) - offset
        } else {
            seconds = Int(mktime(&tm))
        }
        guard seconds >= 0 else { throw SearchTimeError(text: text) }
        return UInt64(seconds)
    }

    static func localMidnight(_ t: UInt64) -> UInt64 { startOf(t) { _ in } }

    /// Local midnight of the day `adjust` makes of t's local date.
    static func startOf(_ t: UInt64, _ adjust: (inout Glibc.tm) -> Void) -> UInt64 {
        var tt = time_t(t)
        var tm = Glibc.tm()
        localtime_r(&tt, &tm)
        tm.tm_hour = 0
        tm.tm_min = 0
        tm.tm_sec = 0
        tm.tm_isdst = -1
        adjust(&tm)
        return UInt64(max(0, mktime(&tm)))
    }
}
