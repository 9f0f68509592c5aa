import AuditPipeline
import Glibc
import LinuxAudit

/// Where the audit records come from: the audit netlink socket (as the audit daemon,
/// or a multicast listener beside auditd) or auditd's plugin protocol on standard
/// input. Reads one batch at a time into `batch`, without blocking.
final class AuditStreamSource {
    let kind: AuditSource
    /// The socket records arrive on (netlink, multicast); nil for the plugin source.
    let reader: AuditNetlink?
    let batch = RecordBatch()
    private let receiveBuffer = NetlinkReceiveBuffer(capacity: 1 << 17)
    private var stdinRemainder: [UInt8] = []
    private var stdinChunk = [UInt8](repeating: 0, count: 1 << 16)
    /// False once standard input ended (plugin): contidd then stops.
    private(set) var isOpen = true
    /// Datagrams read by the last `read()`.
    private(set) var lastDatagrams = 0

    init(kind: AuditSource) throws {
        self.kind = kind
        switch kind {
        case .netlink, .auto: reader = try AuditNetlink(mode: .unicast, receiveBufferSize: 64 << 20)
        case .multicast: reader = try AuditNetlink(mode: .multicast, receiveBufferSize: 64 << 20)
        case .plugin:
            reader = nil
            _ = fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK)
        }
    }

    var pollDescriptor: Int32 { reader?.descriptor.rawValue ?? (isOpen ? 0 : -1) }
    var socketOverruns: Int { reader?.gaps ?? 0 }

    /// Appends a record that arrived with a request's answers (registering).
    func appendKernelRecord(_ m: AuditNetlinkMessage) { batch.appendKernelRecord(type: m.type, payload: m.payload) }

    /// Reads what is there into `batch`; true when anything was read.
    func read() -> Bool {
        lastDatagrams = 0
        guard let reader else { return readStandardInput() }
        do {
            let r = try reader.receive(into: receiveBuffer, timeout: .zero, maxDatagrams: 4096) { m in
                self.batch.appendKernelRecord(type: m.type, payload: m.payload)
            }
            lastDatagrams = r.datagrams
            if r.gaps > 0 { Log.warning("audit socket overflowed: \(reader.gaps) overruns so far (records lost)") }
            return r.datagrams > 0 || r.gaps > 0
        } catch {
            Log.error("reading audit records: \(error)")
            return false
        }
    }

    private func readStandardInput() -> Bool {
        var any = false
        while true {
            let n = stdinChunk.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                break
            }
            if n == 0 {
                isOpen = false
                break
            }
            any = true
            stdinRemainder += stdinChunk[..<n]
            if stdinRemainder.count > 1 << 20 { break }
        }
        var start = 0
        stdinRemainder.withUnsafeBytes { all in
            for i in 0..<all.count where all[i] == 0x0A {
                batch.appendLine(UnsafeRawBufferPointer(rebasing: all[start..<i]))
                start = i + 1
            }
        }
        stdinRemainder.removeFirst(start)
        if !isOpen, !stdinRemainder.isEmpty {
            stdinRemainder.withUnsafeBytes { batch.appendLine($0) }
            stdinRemainder.removeAll()
        }
        return any
    }

    func close() { reader?.close() }
}
