// The body of a record, `name=value` tokens as the kernel and auditd write them.
// Tokenizing is total: every byte of the body belongs to exactly one token or
// separator, so the body can always be written back byte for byte.

public struct AuditField: Sendable, Equatable {
    public enum Form: Sendable, Equatable {
        /// `name="text"`
        case quoted
        /// `msg='op=... res=success'` (user-space payloads)
        case singleQuoted
        /// `name=(null)`
        case null
        /// `name=value` without quotes: numbers, flags, hex-encoded strings
        case bare
        /// a token without `=` (`avc:`, `denied`, `{`)
        case word
        /// `NAME={ ... }` in the enriched part (SADDR)
        case braced
    }
    /// White space before the token, as written.
    public var separator: String
    /// The token's bytes as written (names and values may hold any byte, valid UTF-8 or not).
    public var rawToken: [UInt8]
    public var name: String
    /// The value exactly as written, quotes included (empty for `.word`).
    public var rawValue: String
    public var form: Form

    /// The token as written (without the separator).
    public var token: String { String(decoding: rawToken, as: UTF8.self) }

    /// The value without its quotes.
    public var unquoted: String {
        switch form {
        case .quoted, .singleQuoted, .braced:
            guard rawValue.count >= 2 else { return rawValue }
            let closes = rawValue.last == rawValue.first || (form == .braced && rawValue.last == "}")
            return closes ? String(rawValue.dropFirst().dropLast()) : String(rawValue.dropFirst())
        default: return rawValue
        }
    }

    /// The string an untrusted field carries: quoted text as is, hex decoded,
    /// `(null)` as nil. Use only on fields the kernel encodes as untrusted strings.
    public var decodedBytes: [UInt8]? {
        switch form {
        case .quoted: return Array(unquoted.utf8)
        case .bare: return AuditText.unhex(Array(rawValue.utf8)) ?? Array(rawValue.utf8)
        case .null: return nil
        default: return Array(unquoted.utf8)
        }
    }

    public var decodedString: String? {
        decodedBytes.map { String(decoding: $0, as: UTF8.self) }
    }
}

public enum FieldTokenizer {
    /// Splits a body (or the enriched part) into fields. `braces` allows `{ ... }` values (enriched SADDR).
    public static func tokenize(_ bytes: some Collection<UInt8>, braces: Bool = false) -> (fields: [AuditField], trailer: String) {
        let (f, t) = tokenizeBytes(bytes, braces: braces)
        return (f, String(decoding: t, as: UTF8.self))
    }

    /// As `tokenize`, with the trailing white space as bytes.
    public static func tokenizeBytes(_ bytes: some Collection<UInt8>, braces: Bool = false) -> (fields: [AuditField], trailer: [UInt8]) {
        let b = Array(bytes)
        var fields: [AuditField] = []
        var i = 0
        let n = b.count
        while i < n {
            let sepStart = i
            while i < n, b[i] == UInt8(ascii: " ") || b[i] == UInt8(ascii: "\t") { i += 1 }
            if i == n {
                return (fields, Array(b[sepStart..<n]))
            }
            let separator = String(decoding: b[sepStart..<i], as: UTF8.self)
            let nameStart = i
            while i < n, b[i] != UInt8(ascii: "="), b[i] != UInt8(ascii: " ") { i += 1 }
            let name = String(decoding: b[nameStart..<i], as: UTF8.self)
            guard i < n, b[i] == UInt8(ascii: "=") else {
                fields.append(AuditField(separator: separator, rawToken: Array(b[nameStart..<i]), name: name, rawValue: "", form: .word))
                continue
            }
            i += 1
            let valueStart = i
            var form = AuditField.Form.bare
            if i < n, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") || (braces && b[i] == UInt8(ascii: "{")) {
                let open = b[i]
                let close = open == UInt8(ascii: "{") ? UInt8(ascii: "}") : open
                form = open == UInt8(ascii: "\"") ? .quoted : open == UInt8(ascii: "'") ? .singleQuoted : .braced
                i += 1
                while i < n, b[i] != close { i += 1 }
                if i < n { i += 1 }  // an unterminated quote runs to the end of the body
                // Anything glued to the closing quote stays part of this value.
                while i < n, b[i] != UInt8(ascii: " ") { i += 1 }
            } else {
                while i < n, b[i] != UInt8(ascii: " ") { i += 1 }
                if b[valueStart..<i].elementsEqual("(null)".utf8) { form = .null }
            }
            fields.append(AuditField(separator: separator, rawToken: Array(b[nameStart..<i]), name: name,
                                     rawValue: String(decoding: b[valueStart..<i], as: UTF8.self), form: form))
        }
        return (fields, [])
    }
}
