// The fields of a SYSCALL record that the process tree is made of, read in one walk
// over the borrowed bytes: offline attribution reads them from every event, and a
// separate search per field (as `AuditRecord`'s accessors do) was most of its cost.
// The kernel writes `arch= syscall= success= exit= a0= a1= a2= a3= items= ppid= pid=`
// first, so the walk stops after a dozen tokens; it skips quoted values whole, so a
// `comm="x pid=1"` is never taken for a field.

public struct SyscallFacts: Sendable, Equatable {
    public var arch: AuditArch?
    public var syscall: Int?
    public var success: Bool?
    public var exit: Int64?
    /// The first argument (clone's flags).
    public var a0: UInt64?
    public var ppid: Int32?
    public var pid: Int32?

    public init(arch: AuditArch? = nil, syscall: Int? = nil, success: Bool? = nil, exit: Int64? = nil,
                a0: UInt64? = nil, ppid: Int32? = nil, pid: Int32? = nil) {
        self.arch = arch
        self.syscall = syscall
        self.success = success
        self.exit = exit
        self.a0 = a0
        self.ppid = ppid
        self.pid = pid
    }

    /// The facts of a record body (from `bodyStart` to `bodyEnd`).
    @inlinable
    public init(body: UnsafeRawBufferPointer) {
        self.init()
        guard let b = body.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return }
        let space = UInt8(ascii: " "), tab = UInt8(ascii: "\t"), eq = UInt8(ascii: "=")
        let end = body.count
        var seen: UInt8 = 0  // one bit per field found
        var i = 0
        while i < end, seen != 0x7F {
            while i < end, b[i] == space || b[i] == tab { i += 1 }
            let nameStart = i
            while i < end, b[i] != eq, b[i] != space { i += 1 }
            guard i < end, b[i] == eq else { continue }
            let nameLength = i - nameStart
            let value: Range<Int>
            if i + 1 < end, b[i + 1] == UInt8(ascii: "\"") || b[i + 1] == UInt8(ascii: "'") {
                value = FieldScanner.valueBounds(b, start: i + 1, end: end)
            } else {
                var j = i + 1
                while j < end, b[j] != space { j += 1 }
                value = (i + 1)..<j
            }
            i = value.upperBound
            let v = UnsafeRawBufferPointer(rebasing: body[value])
            let bit: UInt8
            switch nameLength {
            case 2 where b[nameStart] == UInt8(ascii: "a") && b[nameStart + 1] == UInt8(ascii: "0"): bit = 1 << 0
            case 3 where Self.equals(b + nameStart, "pid"): bit = 1 << 1
            case 4 where Self.equals(b + nameStart, "arch"): bit = 1 << 2
            case 4 where Self.equals(b + nameStart, "exit"): bit = 1 << 3
            case 4 where Self.equals(b + nameStart, "ppid"): bit = 1 << 4
            case 7 where Self.equals(b + nameStart, "syscall"): bit = 1 << 5
            case 7 where Self.equals(b + nameStart, "success"): bit = 1 << 6
            default: continue
            }
            guard seen & bit == 0 else { continue }  // the first of each name counts
            seen |= bit
            switch bit {
            case 1 << 0: a0 = FieldScanner.hexadecimal(v, bits: 64)
            case 1 << 1: pid = FieldScanner.decimal(v).flatMap { Int32(exactly: $0) }
            case 1 << 2: arch = FieldScanner.hexadecimal(v, bits: 32).map { AuditArch(rawValue: UInt32($0)) }
            case 1 << 3: exit = FieldScanner.decimal(v)
            case 1 << 4: ppid = FieldScanner.decimal(v).flatMap { Int32(exactly: $0) }
            case 1 << 5: syscall = FieldScanner.decimal(v).map { Int($0) }
            default: success = v.count == 3 && v[0] == UInt8(ascii: "y") && v[1] == UInt8(ascii: "e") && v[2] == UInt8(ascii: "s")
            }
        }
    }

    /// The facts of an owned record (the cold path: held attribution, tests).
    public init(_ record: AuditRecord) {
        self = record.withBody { SyscallFacts(body: $0) }
    }

    @inlinable @inline(__always)
    static func equals(_ p: UnsafePointer<UInt8>, _ s: StaticString) -> Bool {
        let n = s.utf8CodeUnitCount
        let q = s.utf8Start
        for k in 0..<n where p[k] != q[k] { return false }
        return true
    }
}
