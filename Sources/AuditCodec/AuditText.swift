// How the kernel writes strings into audit records (kernel/audit.c,
// audit_log_n_untrustedstring) and the reverse.

public enum AuditText {
    /// True when the kernel would hex-encode these bytes: a `"`, or any byte
    /// below 0x21 or above 0x7e (so also space and all of UTF-8).
    @inline(__always)
    public static func needsHex(_ bytes: some Sequence<UInt8>) -> Bool {
        for b in bytes where b == UInt8(ascii: "\"") || b < 0x21 || b > 0x7e { return true }
        return false
    }

    /// Encodes a string the way the kernel encodes comm, exe, key, paths and
    /// arguments: in double quotes when safe, else as upper-case hex without quotes.
    public static func untrusted(_ s: some StringProtocol) -> String {
        untrusted(bytes: Array(s.utf8))
    }

    public static func untrusted(bytes: [UInt8]) -> String {
        if needsHex(bytes) { return hex(bytes) }
        return "\"" + String(decoding: bytes, as: UTF8.self) + "\""
    }

    private static let hexDigits = Array("0123456789ABCDEF".utf8)

    /// Upper-case hex, as the kernel writes it.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(hexDigits[Int(b >> 4)])
            out.append(hexDigits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes hex (either case); nil when the text is not an even run of hex digits.
    public static func unhex(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var hi: UInt8 = 0
        var odd = false
        for c in text {
            guard let v = hexValue(c) else { return nil }
            if odd { out.append(hi << 4 | v) } else { hi = v }
            odd.toggle()
        }
        return out
    }

    @inline(__always)
    public static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
