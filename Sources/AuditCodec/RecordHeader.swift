#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
// The fixed part of an audit text line, found without allocating:
//   [node=NAME ]type=NAME msg=audit(SECONDS.MILLIS:SERIAL):[ BODY][0x1D ENRICHED]

/// When an event happened, as the kernel stamps it (seconds and milliseconds).
public struct AuditTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var seconds: UInt64
    public var milliseconds: UInt16
    public init(seconds: UInt64, milliseconds: UInt16) {
        self.seconds = seconds
        self.milliseconds = milliseconds
    }
    /// Milliseconds since the epoch: the assembler's stream clock.
    @inline(__always) public var totalMilliseconds: UInt64 { seconds &* 1000 &+ UInt64(milliseconds) }
    public static func < (a: Self, b: Self) -> Bool { a.totalMilliseconds < b.totalMilliseconds }
    /// `1795929164.030`, as inside `msg=audit(...)`.
    public var description: String {
        let ms = String(milliseconds)
        return "\(seconds)." + String(repeating: "0", count: 3 - ms.count) + ms
    }
}

/// Offsets into one line; all positions are byte offsets from the line's start.
public struct RecordHeader: Sendable, Equatable {
    public var type: AuditRecordType
    /// `node=` value, empty range when absent.
    public var node: Range<Int32>
    /// The type name as written (`SYSCALL`, `UNKNOWN[2900]`).
    public var typeName: Range<Int32>
    public var time: AuditTime
    public var serial: UInt32
    /// True when `)` is followed by `:` (every kernel record; old DAEMON_* lines lack it).
    public var hasColon: Bool
    /// Where the body starts (just after `):` or `)`), and where it ends (0x1D or end of line).
    public var bodyStart: Int32
    public var bodyEnd: Int32
    /// Length of the whole line (without newline).
    public var length: Int32

    public var hasEnrichment: Bool { bodyEnd < length }

    public init(type: AuditRecordType, node: Range<Int32>, typeName: Range<Int32>, time: AuditTime, serial: UInt32,
                hasColon: Bool, bodyStart: Int32, bodyEnd: Int32, length: Int32) {
        self.type = type
        self.node = node
        self.typeName = typeName
        self.time = time
        self.serial = serial
        self.hasColon = hasColon
        self.bodyStart = bodyStart
        self.bodyEnd = bodyEnd
        self.length = length
    }
}

public enum RecordScanner {
    public static let enrichmentSeparator: UInt8 = 0x1D

    /// Parses the header of one line (no trailing newline). Hot path: no allocation.
    @inline(__always)
    public static func scan(_ line: UnsafeRawBufferPointer) -> Result<RecordHeader, AuditParseError> {
        let n = line.count
        guard n > 0, let base = line.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return .failure(AuditParseError(.emptyLine, column: 1))
        }
        guard n < 65536 else { return .failure(AuditParseError(.lineTooLong(n), column: 1)) }
        var p = 0
        var node: Range<Int32> = 0..<0
        // "node=NAME "
        if n > 5, base[0] == UInt8(ascii: "n"), base[1] == UInt8(ascii: "o"), base[2] == UInt8(ascii: "d"),
           base[3] == UInt8(ascii: "e"), base[4] == UInt8(ascii: "=") {
            var q = 5
            while q < n, base[q] != UInt8(ascii: " ") { q += 1 }
            guard q < n else { return .failure(AuditParseError(.missingType, column: q + 1)) }
            node = 5..<Int32(q)
            p = q + 1
        }
        // "type="
        guard p + 5 <= n, base[p] == UInt8(ascii: "t"), base[p + 1] == UInt8(ascii: "y"),
              base[p + 2] == UInt8(ascii: "p"), base[p + 3] == UInt8(ascii: "e"), base[p + 4] == UInt8(ascii: "=")
        else { return .failure(AuditParseError(.missingType, column: p + 1)) }
        p += 5
        let nameStart = p
        // Validated and hashed in one pass (the table's FNV-1a), looked up without a second pass.
        var h: UInt64 = AuditRecordTypeTable.hashSeed
        while p < n {
            let c = base[p]
            if c == UInt8(ascii: " ") { break }
            let ok = (c &- UInt8(ascii: "A")) < 26 || (c &- UInt8(ascii: "0")) < 10
                || c == UInt8(ascii: "_") || c == UInt8(ascii: "[") || c == UInt8(ascii: "]")
            guard ok else { return .failure(AuditParseError(.badTypeName, column: p + 1)) }
            h = (h ^ UInt64(c)) &* AuditRecordTypeTable.hashPrime
            p += 1
        }
        guard p > nameStart else { return .failure(AuditParseError(.badTypeName, column: p + 1)) }
        let name = UnsafeRawBufferPointer(start: base + nameStart, count: p - nameStart)
        let type: AuditRecordType
        if let t = AuditRecordTypeTable.shared.lookup(name, hash: h) {
            type = AuditRecordType(rawValue: t)
        } else if let t = unknownNumber(name) {
            type = AuditRecordType(rawValue: t)
        } else if name.contains(UInt8(ascii: "[")) || name.contains(UInt8(ascii: "]")) {
            return .failure(AuditParseError(.badTypeName, column: nameStart + 1))
        } else {
            // A name this table does not know (a newer auditd): kept as written, number 0.
            type = AuditRecordType(rawValue: 0)
        }
        // " msg=audit("
        // " msg=audit(" as one 8-byte and one 4-byte compare (the second overlaps by one byte).
        let litCount = 11
        guard p + litCount <= n,
              UnsafeRawPointer(base + p).loadUnaligned(as: UInt64.self) == Self.msgAudit8,
              UnsafeRawPointer(base + p + 7).loadUnaligned(as: UInt32.self) == Self.msgAudit4 else {
            return .failure(AuditParseError(.missingTimestamp, column: p + 1))
        }
        p += litCount
        let stamp: (time: AuditTime, serial: UInt32, colon: Bool)
        if let fast = parseKernelStamp(base, &p, n) {
            stamp = fast
        } else {
            switch parseStamp(base, &p, n) {
            case .success(let v): stamp = v
            case .failure(let e): return .failure(e)
            }
        }
        // The body ends at the first 0x1D (ENRICHED part), if any.
        var end = n
        if let sep = memchr(base + p, Int32(enrichmentSeparator), n - p) {
            end = base.distance(to: sep.assumingMemoryBound(to: UInt8.self))
        }
        return .success(RecordHeader(
            type: type, node: node, typeName: Int32(nameStart)..<Int32(nameStart + name.count),
            time: stamp.time, serial: stamp.serial,
            hasColon: stamp.colon, bodyStart: Int32(p), bodyEnd: Int32(end), length: Int32(n)))
    }

    /// " msg=aud" and "dit(" as little-endian words (literals: a static let costs a once-check per use).
    static let msgAudit8: UInt64 = 0x6475_613D_6773_6D20
    static let msgAudit4: UInt32 = 0x2874_6964

    /// Eight ASCII digits at p as a number, or nil when one is not a digit (SWAR, as simdjson).
    @inline(__always)
    static func eightDigits(_ p: UnsafePointer<UInt8>) -> UInt64? {
        let x = UnsafeRawPointer(p).loadUnaligned(as: UInt64.self)
        // Every byte in 0x30...0x39: high nibble 3, and adding 6 keeps it 3.
        guard x & 0xF0F0_F0F0_F0F0_F0F0 == 0x3030_3030_3030_3030,
              (x &+ 0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0 == 0x3030_3030_3030_3030 else { return nil }
        var v = x &- 0x3030_3030_3030_3030
        v = (v &* 10) &+ (v >> 8)
        v = (((v & 0x0000_00FF_0000_00FF) &* (100 &+ (1_000_000 << 32)))
             &+ (((v >> 16) & 0x0000_00FF_0000_00FF) &* (1 &+ (10_000 << 32)))) >> 32
        return v
    }

    /// The stamp as the kernel prints it (`SECONDS.MMM:SERIAL)` then `:`), or nil, leaving p
    /// as it was, for anything else: `parseStamp` then says what is wrong, or takes the
    /// forms without the colon. The hot path: no error values built.
    @inline(__always)
    static func parseKernelStamp(_ base: UnsafePointer<UInt8>, _ p: inout Int, _ n: Int) -> (time: AuditTime, serial: UInt32, colon: Bool)? {
        var q = p
        var seconds: UInt64 = 0
        guard q < n, base[q] &- UInt8(ascii: "1") < 9 else { return nil }  // no leading zero
        // Today's stamps have 10 digits of seconds: 8 at once, the rest one by one.
        if q + 8 < n, let high = eightDigits(base + q) { seconds = high; q += 8 }
        while q < n, q - p < 19 {
            let d = base[q] &- UInt8(ascii: "0")
            if d >= 10 { break }
            seconds = seconds &* 10 &+ UInt64(d)
            q += 1
        }
        guard q + 5 < n, base[q] == UInt8(ascii: "."), base[q + 4] == UInt8(ascii: ":") else { return nil }
        let m0 = base[q + 1] &- UInt8(ascii: "0"), m1 = base[q + 2] &- UInt8(ascii: "0"), m2 = base[q + 3] &- UInt8(ascii: "0")
        guard m0 < 10, m1 < 10, m2 < 10 else { return nil }
        q += 5
        let serStart = q
        guard base[q] &- UInt8(ascii: "1") < 9 || (base[q] == UInt8(ascii: "0") && q + 1 < n && base[q + 1] == UInt8(ascii: ")")) else { return nil }
        var serial: UInt64 = 0
        while q < n, q - serStart < 10 {
            let d = base[q] &- UInt8(ascii: "0")
            if d >= 10 { break }
            serial = serial &* 10 &+ UInt64(d)
            q += 1
        }
        guard serial <= UInt64(UInt32.max), q + 1 < n, base[q] == UInt8(ascii: ")"), base[q + 1] == UInt8(ascii: ":") else { return nil }
        p = q + 2
        let ms = UInt16(m0) &* 100 &+ UInt16(m1) &* 10 &+ UInt16(m2)
        return (AuditTime(seconds: seconds, milliseconds: ms), UInt32(serial), true)
    }

    /// `SECONDS.MMM:SERIAL)` and an optional `:` from p (just after `audit(`); leaves p after them.
    @inline(__always)
    static func parseStamp(_ base: UnsafePointer<UInt8>, _ p: inout Int, _ n: Int) -> Result<(time: AuditTime, serial: UInt32, colon: Bool), AuditParseError> {
        var seconds: UInt64 = 0
        let secStart = p
        while p < n, isDigit(base[p]), p - secStart < 19 {
            seconds = seconds &* 10 &+ UInt64(base[p] &- 48)
            p += 1
        }
        guard p > secStart, p < n, base[p] == UInt8(ascii: ".") else {
            return .failure(AuditParseError(.badTimestamp("expected SECONDS."), column: p + 1))
        }
        // The kernel prints numbers without leading zeros; a line that has them is not its text.
        guard base[secStart] != UInt8(ascii: "0") || p - secStart == 1 else {
            return .failure(AuditParseError(.badTimestamp("seconds with a leading zero"), column: secStart + 1))
        }
        p += 1
        // MILLIS: the kernel prints exactly three digits.
        guard p + 3 < n, isDigit(base[p]), isDigit(base[p + 1]), isDigit(base[p + 2]), base[p + 3] == UInt8(ascii: ":") else {
            return .failure(AuditParseError(.badTimestamp("expected three digits of milliseconds and ':'"), column: p + 1))
        }
        let ms = UInt16(base[p] &- 48) &* 100 &+ UInt16(base[p + 1] &- 48) &* 10 &+ UInt16(base[p + 2] &- 48)
        p += 4
        var serial: UInt64 = 0
        let serStart = p
        while p < n, isDigit(base[p]), p - serStart < 10 {
            serial = serial &* 10 &+ UInt64(base[p] &- 48)
            p += 1
        }
        guard p > serStart, serial <= UInt64(UInt32.max), p < n, base[p] == UInt8(ascii: ")") else {
            return .failure(AuditParseError(.badTimestamp("expected a serial number (0-4294967295) and ')'"), column: p + 1))
        }
        guard base[serStart] != UInt8(ascii: "0") || p - serStart == 1 else {
            return .failure(AuditParseError(.badTimestamp("serial with a leading zero"), column: serStart + 1))
        }
        p += 1
        var colon = false
        if p < n, base[p] == UInt8(ascii: ":") { colon = true; p += 1 }
        return .success((AuditTime(seconds: seconds, milliseconds: ms), UInt32(serial), colon))
    }

    /// Parses a kernel netlink payload `audit(SEC.MS:SERIAL): BODY` whose type came in nlmsg_type.
    public static func scanKernelPayload(_ payload: UnsafeRawBufferPointer, type: AuditRecordType) -> Result<RecordHeader, AuditParseError> {
        // Reuse the line scanner on a synthetic prefix-free form by walking from "audit(".
        let n = payload.count
        guard n >= 6, let base = payload.baseAddress?.assumingMemoryBound(to: UInt8.self),
              memcmp(base, "audit(", 6) == 0
        else { return .failure(AuditParseError(.missingTimestamp, column: 1)) }
        var p = 6
        let stamp: (time: AuditTime, serial: UInt32, colon: Bool)
        switch parseStamp(base, &p, n) {
        case .success(let v): stamp = v
        case .failure(let e): return .failure(e)
        }
        return .success(RecordHeader(
            type: type, node: 0..<0, typeName: 0..<0, time: stamp.time,
            serial: stamp.serial, hasColon: stamp.colon, bodyStart: Int32(p), bodyEnd: Int32(n), length: Int32(n)))
    }

    @inline(__always) static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// `UNKNOWN[1234]` -> 1234.
    static func unknownNumber(_ name: UnsafeRawBufferPointer) -> UInt16? {
        guard name.count > 9, name.starts(with: "UNKNOWN[".utf8), name[name.count - 1] == UInt8(ascii: "]") else { return nil }
        var v: UInt32 = 0
        for c in name[8..<(name.count - 1)] {
            guard isDigit(c) else { return nil }
            v = v * 10 + UInt32(c - 48)
            if v > UInt32(UInt16.max) { return nil }
        }
        return UInt16(v)
    }
}
