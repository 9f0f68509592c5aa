import AuditCodec

// The audit container ID (SPEC §3): a 128-bit value chosen by the orchestrator.

/// A container ID. Printed as decimal when the upper 64 bits are zero (the
/// form of the kernel patches), else as a lower-case canonical UUID.
/// The 64-bit all-ones value is the kernel's "unset" and is never a valid ID.
public struct ContainerID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let high: UInt64
    public let low: UInt64

    /// nil for the unset value (upper half zero, lower half all ones).
    public init?(high: UInt64, low: UInt64) {
        if high == 0, low == UInt64.max { return nil }
        self.high = high
        self.low = low
    }

    /// A decimal ID; nil for 18446744073709551615 (unset).
    public init?(_ value: UInt64) {
        self.init(high: 0, low: value)
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.high, a.low) < (b.high, b.low)
    }

    public func append(to out: inout [UInt8]) {
        if high == 0 {
            appendDecimal(low, to: &out)
            return
        }
        let hex = Array("0123456789abcdef".utf8)
        for i in 0..<32 {
            if i == 8 || i == 12 || i == 16 || i == 20 { out.append(UInt8(ascii: "-")) }
            let word = i < 16 ? high : low
            let shift = UInt64(60 - 4 * (i % 16))
            out.append(hex[Int((word >> shift) & 0xf)])
        }
    }

    static let acceptedForms =
        "a container ID is a UUID (8-4-4-4-12 hex digits), 32 hex digits, or a decimal number below 18446744073709551615"

    /// Parses any accepted form. Unset spellings (`-1`, `unset`, 18446744073709551615)
    /// and malformed text both fail with EINVAL.
    public init(parsing text: some StringProtocol) throws(ContainerFailure) {
        guard let id = try Self.parseRequest(text) else {
            throw ContainerFailure(.EINVAL, Self.unsetReason)
        }
        self = id
    }

    static let unsetReason =
        "a container ID cannot be unset (-1, unset and 18446744073709551615 all mean unset)"

    /// Parses the ID of a registration request: nil when the text is an
    /// attempt to unset (the registration ladder decides its errno, after ESRCH);
    /// EINVAL naming the accepted forms when the text is malformed.
    /// One trailing newline is allowed, as `echo ID > /proc/PID/audit_containerid` writes it.
    public static func parseRequest(_ text: some StringProtocol) throws(ContainerFailure) -> ContainerID? {
        var utf8 = Array(text.utf8)
        if utf8.last == UInt8(ascii: "\n") { utf8.removeLast() }
        if utf8 == Array("-1".utf8) || utf8 == Array("unset".utf8) { return nil }
        let shown = String(decoding: utf8.prefix(64), as: UTF8.self)
        func malformed(_ why: String) -> ContainerFailure {
            ContainerFailure(.EINVAL, "\"\(shown)\" is not a container ID (\(why)); \(acceptedForms)")
        }
        if utf8.isEmpty { throw malformed("empty") }

        if utf8.count == 36 || utf8.count == 32 {
            var digits: [UInt8] = []
            digits.reserveCapacity(32)
            for (i, c) in utf8.enumerated() {
                if utf8.count == 36, i == 8 || i == 13 || i == 18 || i == 23 {
                    guard c == UInt8(ascii: "-") else { throw malformed("misplaced '-' in a UUID") }
                    continue
                }
                guard let v = AuditText.hexValue(c) else { throw malformed("not a hex digit in a UUID") }
                digits.append(v)
            }
            var high: UInt64 = 0
            var low: UInt64 = 0
            for d in digits[0..<16] { high = high << 4 | UInt64(d) }
            for d in digits[16..<32] { low = low << 4 | UInt64(d) }
            return ContainerID(high: high, low: low)  // nil: the unset value written in hex
        }

        var value: UInt64 = 0
        for c in utf8 {
            guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else {
                throw malformed("not a decimal number")
            }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
            if o1 || o2 { throw malformed("decimal too large") }
            value = a
        }
        return ContainerID(value)  // nil: 18446744073709551615
    }
}

extension ContainerID: ExpressibleByIntegerLiteral {
    /// For literals in code and tests; the unset value is a programming error.
    public init(integerLiteral value: UInt64) {
        guard let id = ContainerID(value) else { preconditionFailure("18446744073709551615 is the unset value") }
        self = id
    }
}

@inline(__always)
func appendDecimal<T: BinaryInteger>(_ value: T, to out: inout [UInt8]) {
    if value < 0 {
        out.append(UInt8(ascii: "-"))
        appendDecimal(UInt64(-Int64(value)), to: &out)
        return
    }
    var v = UInt64(value)
    if v < 10 {
        out.append(UInt8(ascii: "0") + UInt8(v))
        return
    }
    var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 20 digits max, built backwards
    let n = withUnsafeMutableBytes(of: &digits) { buf -> Int in
        var i = buf.count
        while v > 0 {
            i -= 1
            buf[i] = UInt8(ascii: "0") + UInt8(v % 10)
            v /= 10
        }
        return i
    }
    withUnsafeBytes(of: &digits) { buf in out.append(contentsOf: buf[n...]) }
}

/// A task's containers, innermost first: `4,^2,^1`. Empty means unset and prints `-1`.
public struct ContainerChain: Hashable, Sendable, CustomStringConvertible {
    public var ids: [ContainerID]

    public init(_ ids: [ContainerID]) { self.ids = ids }
    public static let unset = ContainerChain([])

    public var isUnset: Bool { ids.isEmpty }
    public var innermost: ContainerID? { ids.first }

    /// True when any element equals `id` (how `contid=` filters match nested containers).
    @inline(__always)
    public func contains(_ id: ContainerID) -> Bool { ids.contains(id) }

    public func append(to out: inout [UInt8]) {
        if ids.isEmpty {
            out.append(UInt8(ascii: "-"))
            out.append(UInt8(ascii: "1"))
            return
        }
        for (i, id) in ids.enumerated() {
            if i > 0 {
                out.append(UInt8(ascii: ","))
                out.append(UInt8(ascii: "^"))
            }
            id.append(to: &out)
        }
    }

    /// Parses `-1` (unset), `123456`, or `4,^2,^1` as a record's `contid=` or `old-contid=` prints it.
    public init(parsing text: some StringProtocol) throws(ContainerFailure) {
        let chains = try Self.parseList(text)
        guard chains.count <= 1 else {
            throw ContainerFailure(.EINVAL, "\"\(text)\" holds \(chains.count) chains, expected one")
        }
        self = chains.first ?? .unset
    }

    /// Parses the netns form, several chains joined by commas (`2,^1,3,^1`); `-1` is no chain.
    public static func parseList(_ text: some StringProtocol) throws(ContainerFailure) -> [ContainerChain] {
        if text == "-1" { return [] }
        var chains: [ContainerChain] = []
        for element in text.split(separator: ",", omittingEmptySubsequences: false) {
            if element.first == "^" {
                guard !chains.isEmpty else {
                    throw ContainerFailure(.EINVAL, "\"\(text)\": a chain starts with a parent (^) element")
                }
                chains[chains.count - 1].ids.append(try ContainerID(parsing: element.dropFirst()))
            } else {
                chains.append(ContainerChain([try ContainerID(parsing: element)]))
            }
        }
        return chains
    }
}

/// Values printed into records byte by byte; their text and bytes come from `append(to:)`.
public protocol RecordPrintable: CustomStringConvertible {
    func append(to out: inout [UInt8])
}

extension RecordPrintable {
    /// The printed form as bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

extension ContainerID: RecordPrintable {}
extension ContainerChain: RecordPrintable {}
