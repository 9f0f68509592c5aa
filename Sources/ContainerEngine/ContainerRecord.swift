import AuditCodec

// The records the engine produces (SPEC §6). The engine writes only the body,
// the text after `msg=audit(T:S): `; the caller stamps time and serial (the
// kernel does, when records are submitted as user messages).

/// One record the engine produced: its type (CONTAINER_OP, NS_INFO, …) and body.
public struct ContainerRecord: Hashable, Sendable, CustomStringConvertible {
    public var type: AuditRecordType
    public var body: String

    public init(type: AuditRecordType, body: String) {
        self.type = type
        self.body = body
    }

    /// `type=CONTAINER_OP msg=audit(1700000000.123:42): op=set …`
    public func line(time: String, serial: UInt64) -> String {
        "type=\(type.name) msg=audit(\(time):\(serial)): \(body)"
    }

    public var description: String { "type=\(type.name) \(body)" }
}

/// Builds record bodies field by field, in bytes.
struct RecordText {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(192) }

    mutating func field(_ name: StaticString, _ value: some BinaryInteger) {
        key(name)
        appendDecimal(value, to: &bytes)
    }

    mutating func field(_ name: StaticString, raw value: [UInt8]) {
        key(name)
        bytes.append(contentsOf: value)
    }

    mutating func field(_ name: StaticString, raw value: String) {
        key(name)
        bytes.append(contentsOf: value.utf8)
    }

    /// A string field encoded the kernel's way (quoted, or hex when unsafe).
    mutating func field(_ name: StaticString, untrusted value: [UInt8]) {
        key(name)
        // contid's records travel through the kernel inside msg='...': a value with a
        // single quote would end that field early, so it is hex-encoded too.
        let text = value.contains(UInt8(ascii: "'")) ? AuditText.hex(value) : AuditText.untrusted(bytes: value)
        bytes.append(contentsOf: text.utf8)
    }

    /// An untrusted string field whose name is not a literal (a label's key).
    mutating func field(name: String, untrusted value: [UInt8]) {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
        bytes.append(contentsOf: name.utf8)
        bytes.append(UInt8(ascii: "="))
        let text = value.contains(UInt8(ascii: "'")) ? AuditText.hex(value) : AuditText.untrusted(bytes: value)
        bytes.append(contentsOf: text.utf8)
    }

    mutating func field(_ name: StaticString, id: ContainerID?) {
        key(name)
        if let id { id.append(to: &bytes) } else { bytes.append(contentsOf: "-1".utf8) }
    }

    private mutating func key(_ name: StaticString) {
        if !bytes.isEmpty { bytes.append(UInt8(ascii: " ")) }
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "="))
    }

    func record(_ type: AuditRecordType) -> ContainerRecord {
        ContainerRecord(type: type, body: String(decoding: bytes, as: UTF8.self))
    }
}
