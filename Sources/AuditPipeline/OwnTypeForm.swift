// How contidd writes the type of its own records (SPEC §6, 2900-2908) in its log:
// by name (`type=CONTAINER_OP`, the default), or numeric (`type=UNKNOWN[2900]`), the
// form auditd writes user messages of types it has no name for, which stock ausearch
// 3.0.9 selects (`-m 2900`) and aureport counts. contid's own readers read both.

import AuditCodec

public enum OwnTypeForm: String, CaseIterable, Sendable {
    case name, numeric

    /// `lines` (each ending in a newline) with our types' names replaced by `UNKNOWN[n]`;
    /// nil when none has one (the common case: nothing is copied).
    public static func numeric(_ lines: UnsafeRawBufferPointer) -> [UInt8]? {
        var out: [UInt8]?
        var copied = 0
        var start = 0
        while start < lines.count {
            var end = start
            while end < lines.count, lines[end] != 0x0A { end += 1 }
            if case .success(let h) = RecordScanner.scan(UnsafeRawBufferPointer(rebasing: lines[start..<end])),
               (AuditRecordType.containerOp.rawValue...AuditRecordType.containerInfo.rawValue).contains(h.type.rawValue),
               lines[start + Int(h.typeName.lowerBound)] != UInt8(ascii: "U") {
                if out == nil { out = []; out!.reserveCapacity(lines.count + 64) }
                out! += lines[copied..<(start + Int(h.typeName.lowerBound))]
                out! += "UNKNOWN[\(h.type.rawValue)]".utf8
                copied = start + Int(h.typeName.upperBound)
            }
            start = end + 1
        }
        guard var o = out else { return nil }
        o += lines[copied...]
        return o
    }
}
