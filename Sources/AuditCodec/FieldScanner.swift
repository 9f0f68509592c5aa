#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one way to find a field in a record body without tokenizing or allocating:
// the hot paths (assembly, attribution, filtering, the daemon) use it on borrowed
// bytes, `AuditRecord`'s typed accessors use it on their own text. Fields are
// found token by token, so a quoted value that holds ` pid=` is never taken for
// the field (a process may name itself `comm="x pid=1"`).

public enum FieldScanner {
    /// Where the value of the first field `name=` of `body` lies (quotes included),
    /// as offsets into `body`; nil when absent. `name` is the bare name (`pid`).
    /// The bytes are searched for the name (memchr); a match at a token's start before
    /// any quote in the body is the field, as the kernel's records have no quote before
    /// their numbers. Anything else is decided by walking the tokens.
    @inlinable
    public static func valueRange(of name: UnsafeRawBufferPointer, in body: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let b = body.baseAddress?.assumingMemoryBound(to: UInt8.self), name.count > 0 else { return nil }
        let end = body.count
        var from = 0
        while from < end, let found = search(name, in: UnsafeRawBufferPointer(rebasing: body[from...])) {
            let at = from + found
            let after = at + name.count
            if after < end, b[after] == UInt8(ascii: "="),
               at == 0 || b[at - 1] == UInt8(ascii: " ") || b[at - 1] == UInt8(ascii: "\t") {
                // The first match at a token's start: it is the field unless a quote came before.
                return hasQuote(in: body, before: at) ? walk(name, in: body) : valueBounds(b, start: after + 1, end: end)
            }
            from = at + 1
        }
        // No token starts with the name: the walk would find none either.
        return nil
    }

    /// True when a `"` or `'` comes before offset `limit` of body.
    @inlinable
    static func hasQuote(in body: UnsafeRawBufferPointer, before limit: Int) -> Bool {
        guard let base = body.baseAddress, limit > 0 else { return false }
        return memchr(base, Int32(UInt8(ascii: "\"")), limit) != nil || memchr(base, Int32(UInt8(ascii: "'")), limit) != nil
    }

    /// The value starting at `start`: a quoted string to its closing quote (and anything
    /// glued to it), else up to the next space.
    @inlinable
    static func valueBounds(_ b: UnsafePointer<UInt8>, start: Int, end: Int) -> Range<Int> {
        var i = start
        if i < end, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") {
            let q = b[i]
            i += 1
            while i < end, b[i] != q { i += 1 }
            if i < end { i += 1 }
        }
        while i < end, b[i] != UInt8(ascii: " ") { i += 1 }
        return start..<i
    }

    /// Token by token from the start: quoted values are skipped whole.
    @inlinable
    static func walk(_ name: UnsafeRawBufferPointer, in body: UnsafeRawBufferPointer) -> Range<Int>? {
        guard let b = body.baseAddress?.assumingMemoryBound(to: UInt8.self), let nb = name.baseAddress else { return nil }
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), eq = UInt8(ascii: "=")
        let end = body.count
        let n = name.count
        var i = 0
        while i < end {
            while i < end, b[i] == space || b[i] == tab { i += 1 }
            let tokenStart = i
            while i < end, b[i] != eq, b[i] != space { i += 1 }
            guard i < end, b[i] == eq else { continue }
            let matches = i - tokenStart == n && memcmp(b + tokenStart, nb, n) == 0
            let value = valueBounds(b, start: i + 1, end: end)
            if matches { return value }
            i = value.upperBound
        }
        return nil
    }

    @inlinable
    public static func valueRange(of name: StaticString, in body: UnsafeRawBufferPointer) -> Range<Int>? {
        valueRange(of: UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), in: body)
    }

    /// The decimal value of the field `name=` (`pid=123`, `exit=-13`); nil when absent,
    /// not a number, or out of Int64's range.
    @inlinable
    public static func integer(_ name: StaticString, in body: UnsafeRawBufferPointer) -> Int64? {
        guard let r = valueRange(of: name, in: body) else { return nil }
        return decimal(UnsafeRawBufferPointer(rebasing: body[r]))
    }

    /// A whole token as a decimal number: `-13`, `4294967295`.
    @inlinable
    public static func decimal(_ v: UnsafeRawBufferPointer) -> Int64? {
        var i = 0
        var negative = false
        if i < v.count, v[i] == UInt8(ascii: "-") { negative = true; i += 1 }
        guard i < v.count else { return nil }
        var x: Int64 = 0
        while i < v.count {
            let d = v[i] &- UInt8(ascii: "0")
            guard d < 10 else { return nil }
            let (m, o1) = x.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int64(d))
            guard !o1, !o2 else { return nil }
            x = a
            i += 1
        }
        return negative ? -x : x
    }

    /// Hex digits (either case, leading zeros allowed) as a number of at most `bits` bits;
    /// nil when empty, not hex, or too large.
    @inlinable
    public static func hexadecimal(_ digits: some Sequence<UInt8>, bits: Int) -> UInt64? {
        var v: UInt64 = 0
        var any = false
        for c in digits {
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c &- UInt8(ascii: "A") &+ 10
            default: return nil
            }
            guard v >> (bits - 4) == 0 else { return nil }
            v = v << 4 | UInt64(d)
            any = true
        }
        return any ? v : nil
    }

    /// True when the field `name=` has exactly this value as written (quotes included:
    /// `key`, `"contid-track"`).
    @inlinable
    public static func has(_ name: StaticString, value: UnsafeRawBufferPointer, in body: UnsafeRawBufferPointer) -> Bool {
        guard let r = valueRange(of: name, in: body), r.count == value.count else { return false }
        return r.isEmpty || memcmp(body.baseAddress! + r.lowerBound, value.baseAddress!, r.count) == 0
    }

    /// The first offset of `needle` in `body` (memmem, which Glibc's module does not export:
    /// memchr for the first byte, memcmp for the rest). A plain byte search, for needles
    /// that cannot occur inside a value.
    @inlinable
    public static func search(_ needle: UnsafeRawBufferPointer, in body: UnsafeRawBufferPointer) -> Int? {
        guard let base = body.baseAddress, let n = needle.baseAddress, needle.count > 0, body.count >= needle.count else { return nil }
        let first = Int32(needle[0])
        var i = 0
        let last = body.count - needle.count
        while i <= last {
            guard let p = memchr(base + i, first, last - i + 1) else { return nil }
            let at = base.distance(to: UnsafeRawPointer(p))
            if memcmp(base + at, n, needle.count) == 0 { return at }
            i = at + 1
        }
        return nil
    }

    @inlinable
    public static func contains(_ needle: StaticString, in body: UnsafeRawBufferPointer) -> Bool {
        search(UnsafeRawBufferPointer(start: needle.utf8Start, count: needle.utf8CodeUnitCount), in: body) != nil
    }

    @inlinable
    public static func contains(_ needle: [UInt8], in body: UnsafeRawBufferPointer) -> Bool {
        needle.withUnsafeBytes { search($0, in: body) } != nil
    }
}
