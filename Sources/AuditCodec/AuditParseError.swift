// What can be wrong with a line of audit text, and where.

public struct AuditParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case emptyLine
        case missingType
        case badTypeName
        case missingTimestamp
        case badTimestamp(String)
        case lineTooLong(Int)
    }
    public var reason: Reason
    /// 1-based column where the problem starts.
    public var column: Int

    public init(_ reason: Reason, column: Int) {
        self.reason = reason
        self.column = column
    }

    public var description: String {
        switch reason {
        case .emptyLine: return "empty line"
        case .missingType: return "column \(column): expected \"type=NAME\" (optionally after \"node=NAME \")"
        case .badTypeName: return "column \(column): record type name must be upper-case letters, digits and '_' or UNKNOWN[n]"
        case .missingTimestamp: return "column \(column): expected \" msg=audit(SECONDS.MILLIS:SERIAL)\" after the type"
        case .badTimestamp(let what): return "column \(column): bad timestamp: \(what)"
        case .lineTooLong(let n): return "line of \(n) bytes is longer than the 64 KiB a record can have"
        }
    }
}
