import AuditCodec
import Glibc

// Records as they come off the wire, kept as auditd log lines
// (`type=NAME msg=audit(T:S): body`) in one reusable arena per batch, so that
// the proc connector can be drained after the batch was read and before any of
// it is attributed.

final class RecordBatch {
    private(set) var bytes: [UInt8] = []
    private(set) var spans: [(start: Int, count: Int)] = []
    private var typeNames: [UInt16: [UInt8]] = [:]

    init() {
        bytes.reserveCapacity(1 << 20)
        spans.reserveCapacity(1024)
    }

    var isEmpty: Bool { spans.isEmpty }
    var count: Int { spans.count }

    func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        spans.removeAll(keepingCapacity: true)
    }

    /// A kernel record: `audit(T:S): body` with its type from nlmsg_type.
    func appendKernelRecord(type: UInt16, payload: UnsafeRawBufferPointer) {
        var n = payload.count
        // The kernel sends no terminator, but user messages may carry their NUL; trim any.
        while n > 0, payload[n - 1] == 0 || payload[n - 1] == 0x0A || payload[n - 1] == 0x20 { n -= 1 }
        guard n > 0 else { return }
        let start = bytes.count
        bytes.append(contentsOf: "type=".utf8)
        if let name = typeNames[type] {
            bytes.append(contentsOf: name)
        } else {
            let name = Array(AuditRecordType(rawValue: type).name.utf8)
            typeNames[type] = name
            bytes.append(contentsOf: name)
        }
        bytes.append(contentsOf: " msg=".utf8)
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: payload[..<n]))
        spans.append((start, bytes.count - start))
    }

    /// A line as auditd writes it (plugin input).
    func appendLine(_ line: UnsafeRawBufferPointer) {
        var n = line.count
        while n > 0, line[n - 1] == 0x0D || line[n - 1] == 0x20 { n -= 1 }
        guard n > 0 else { return }
        let start = bytes.count
        bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: line[..<n]))
        spans.append((start, n))
    }

    func forEach(_ body: (UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { all in
            for s in spans { body(UnsafeRawBufferPointer(rebasing: all[s.start..<(s.start + s.count)])) }
        }
    }
}
