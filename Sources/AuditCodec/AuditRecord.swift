#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// One audit record: a line of text with its header parsed and its fields on demand.

public struct AuditRecord: Sendable, Equatable {
    /// The line without its newline, exactly as read.
    public let text: [UInt8]
    public let header: RecordHeader

    public init(text: [UInt8], header: RecordHeader) {
        self.text = text
        self.header = header
    }

    /// Parses one line (without newline).
    public init(parsing line: some Collection<UInt8>) throws(AuditParseError) {
        let bytes = Array(line)
        let r = bytes.withUnsafeBytes { RecordScanner.scan($0) }
        switch r {
        case .success(let h): self.init(text: bytes, header: h)
        case .failure(let e): throw e
        }
    }

    public init(parsing line: String) throws(AuditParseError) {
        try self.init(parsing: Array(line.utf8))
    }

    public var type: AuditRecordType { header.type }
    public var typeName: String { slice(header.typeName) }
    public var node: String? { header.node.isEmpty ? nil : slice(header.node) }
    public var time: AuditTime { header.time }
    public var serial: UInt32 { header.serial }

    /// The body as written (from just after `):`, leading white space included).
    public var body: String { slice(Int32(header.bodyStart)..<header.bodyEnd) }
    /// The ENRICHED part after 0x1D, or nil for a RAW record.
    public var enrichment: String? {
        header.hasEnrichment ? slice((header.bodyEnd + 1)..<header.length) : nil
    }
    public var line: String { String(decoding: text, as: UTF8.self) }

    private func slice(_ r: Range<Int32>) -> String {
        String(decoding: text[Int(r.lowerBound)..<Int(r.upperBound)], as: UTF8.self)
    }

    /// The body's fields, in order.
    public var fields: [AuditField] {
        FieldTokenizer.tokenize(text[Int(header.bodyStart)..<Int(header.bodyEnd)]).fields
    }

    /// The interpreted fields of an ENRICHED record (`UID="root"`, `SADDR={ ... }`).
    public var enrichedFields: [AuditField] {
        guard header.hasEnrichment else { return [] }
        return FieldTokenizer.tokenize(text[Int(header.bodyEnd + 1)..<Int(header.length)], braces: true).fields
    }

    /// The first field with this name. For a user message, fields inside `msg='...'` are
    /// found too when the outer body has no such field.
    public func field(_ name: String) -> AuditField? {
        let all = fields
        if let f = all.first(where: { $0.name == name && $0.form != .word }) { return f }
        if let msg = all.first(where: { $0.name == "msg" && $0.form == .singleQuoted }) {
            return FieldTokenizer.tokenize(Array(msg.unquoted.utf8)).fields.first { $0.name == name && $0.form != .word }
        }
        return nil
    }

    /// Where the value of the first body field `name=` lies in `text` (quotes included),
    /// found by `FieldScanner` without tokenizing or allocating.
    public func valueRange(of name: UnsafeRawBufferPointer) -> Range<Int>? {
        let start = Int(header.bodyStart)
        return withBody { FieldScanner.valueRange(of: name, in: $0) }.map { ($0.lowerBound + start)..<($0.upperBound + start) }
    }

    /// The body's bytes, borrowed.
    @inline(__always)
    public func withBody<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try text.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[Int(header.bodyStart)..<Int(header.bodyEnd)])) }
    }

    public func valueRange(of name: String) -> Range<Int>? {
        var name = name
        return name.withUTF8 { valueRange(of: UnsafeRawBufferPointer($0)) }
    }

    /// The raw value of a field, quotes included.
    public subscript(name: String) -> String? {
        if let r = valueRange(of: name) { return String(decoding: text[r], as: UTF8.self) }
        return field(name)?.rawValue  // inside msg='...'
    }

    /// A decimal field read straight from the bytes (`pid=123`, `exit=-13`).
    @inline(__always)
    func integer(_ name: StaticString) -> Int64? {
        withBody { FieldScanner.integer(name, in: $0) }
    }

    // MARK: typed access to the fields that matter

    public var pid: Int32? { integer("pid").flatMap { Int32(exactly: $0) } }
    public var ppid: Int32? { integer("ppid").flatMap { Int32(exactly: $0) } }
    public var syscall: Int? { integer("syscall").map { Int($0) } }
    public var exit: Int64? { integer("exit") }
    public var success: Bool? {
        let inBody = withBody { body in
            FieldScanner.valueRange(of: "success", in: body).map { r in
                r.count == 3 && body[r.lowerBound] == UInt8(ascii: "y") && body[r.lowerBound + 1] == UInt8(ascii: "e")
                    && body[r.lowerBound + 2] == UInt8(ascii: "s")
            }
        }
        return inBody ?? self["success"].map { $0 == "yes" }  // inside msg='...'
    }
    public var auid: UInt32? { integer("auid").flatMap { UInt32(exactly: $0) } }
    public var uid: UInt32? { integer("uid").flatMap { UInt32(exactly: $0) } }
    public var ses: UInt32? { integer("ses").flatMap { UInt32(exactly: $0) } }
    /// `key=` decoded; nil for `(null)` or absent.
    public var key: String? { field("key")?.decodedString }
    public var comm: String? { field("comm")?.decodedString }
    public var exe: String? { field("exe")?.decodedString }
    /// The syscall's arguments a0..a3 (hex in the record).
    public func argument(_ i: Int) -> UInt64? {
        let name: StaticString
        switch i {
        case 0: name = "a0"
        case 1: name = "a1"
        case 2: name = "a2"
        case 3: name = "a3"
        default: return self["a\(i)"].flatMap { UInt64($0, radix: 16) }
        }
        // Read from the bytes: a0..a3 are asked for on every clone record.
        let range = withBody { FieldScanner.valueRange(of: name, in: $0) }
        guard range != nil else { return self["a\(i)"].flatMap { UInt64($0, radix: 16) } }  // inside msg='...'
        return withBody { body in range.flatMap { FieldScanner.hexadecimal(body[$0], bits: 64) } }
    }

    // MARK: encoding

    /// Writes the record back from its parts: node, type, timestamp, fields, enrichment.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.count)
        if !header.node.isEmpty {
            out += "node=".utf8
            out += text[Int(header.node.lowerBound)..<Int(header.node.upperBound)]
            out.append(UInt8(ascii: " "))
        }
        out += "type=".utf8
        out += text[Int(header.typeName.lowerBound)..<Int(header.typeName.upperBound)]
        out += " msg=audit(".utf8
        out += time.description.utf8
        out.append(UInt8(ascii: ":"))
        out += String(serial).utf8
        out.append(UInt8(ascii: ")"))
        if header.hasColon { out.append(UInt8(ascii: ":")) }
        let (fields, trailer) = FieldTokenizer.tokenizeBytes(text[Int(header.bodyStart)..<Int(header.bodyEnd)])
        for f in fields { out += f.separator.utf8; out += f.rawToken }
        out += trailer
        if header.hasEnrichment {
            out.append(RecordScanner.enrichmentSeparator)
            let (ef, etrailer) = FieldTokenizer.tokenizeBytes(text[Int(header.bodyEnd + 1)..<Int(header.length)], braces: true)
            for f in ef { out += f.separator.utf8; out += f.rawToken }
            out += etrailer
        }
        return out
    }

    /// Builds a record line from parts (used for records contid writes itself).
    public static func make(type: AuditRecordType, time: AuditTime, serial: UInt32, body: String, node: String? = nil) -> AuditRecord {
        var s = ""
        if let node { s += "node=\(node) " }
        s += "type=\(type.name) msg=audit(\(time):\(serial)):"
        if !body.isEmpty { s += " " + body }
        // Lines contid builds always parse: the parts above are well formed.
        return try! AuditRecord(parsing: s)
    }
}
