// The ClickHouse destination: events become rows (ClickHouseRows), gathered in a
// batch that is sent when it holds `batchRows` rows or `batchBytes` bytes, or when it
// is `batchInterval` old at a flush. While the server is unreachable or refuses, each
// batch goes to a spool directory (one file per batch, fsynced, bounded), and the
// spool is sent again, oldest first, before anything newer; a batch that does not fit
// in the spool is lost and counted. A batch sent twice (its answer lost) writes the
// same rows twice: the table is a ReplacingMergeTree on the event's identity and
// every query contid runs reads with FINAL, so no event is ever visible twice.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec

/// Where the fleet store is: `http://[user[:password]@]host[:port][/]`.
public struct ClickHouseEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16
    public var user: String?
    public var password: String?

    public init(host: String, port: UInt16 = 8123, user: String? = nil, password: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
    }

    public init(url: String) throws(ClickHouseError) {
        guard url.hasPrefix("http://") else {
            throw .badURL(url, reason: url.hasPrefix("https://") ? "https is not supported: use a local TLS proxy" : "must start with http://")
        }
        var rest = Substring(url.dropFirst(7))
        if let slash = rest.firstIndex(of: "/") {
            guard rest[slash...].allSatisfy({ $0 == "/" }) else { throw .badURL(url, reason: "no path expected (give the table with --table)") }
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let cred = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = cred.firstIndex(of: ":") {
                user = String(cred[..<colon])
                password = String(cred[cred.index(after: colon)...])
            } else {
                user = String(cred)
            }
        }
        port = 8123
        if rest.hasPrefix("[") {  // [::1]:8123
            guard let close = rest.firstIndex(of: "]") else { throw .badURL(url, reason: "unclosed [") }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            rest = rest[rest.index(after: close)...]
            if rest.hasPrefix(":") {
                guard let p = UInt16(rest.dropFirst()) else { throw .badURL(url, reason: "bad port") }
                port = p
            }
        } else if let colon = rest.lastIndex(of: ":") {
            guard let p = UInt16(rest[rest.index(after: colon)...]), p > 0 else { throw .badURL(url, reason: "bad port") }
            port = p
            host = String(rest[..<colon])
        } else {
            host = String(rest)
        }
        if host.isEmpty { throw .badURL(url, reason: "no host") }
    }

    /// The URL without its password.
    public var description: String {
        let h = host.contains(":") ? "[\(host)]" : host
        return "http://\(user.map { "\($0)@" } ?? "")\(h):\(port)/"
    }
}

public enum ClickHouseError: Error, Equatable, Sendable, CustomStringConvertible {
    case badURL(String, reason: String)
    /// The server could not be reached (connect, send, receive failed).
    case unreachable(String, reason: String)
    /// The server answered with an error: HTTP status and its text (`Code: 60, ... Table ... doesn't exist`).
    case refused(status: Int, message: String)
    /// The spool directory failed (errno name and what).
    case spool(String)

    public var description: String {
        switch self {
        case .badURL(let u, let r): return "bad ClickHouse URL \"\(u)\": \(r)"
        case .unreachable(let e, let r): return "ClickHouse at \(e) unreachable: \(r)"
        case .refused(let s, let m): return "ClickHouse refused (HTTP \(s)): \(m.prefix(300))"
        case .spool(let m): return "spool: \(m)"
        }
    }
}

/// Runs one statement on the server: `query` with `body` as its data (an INSERT's rows).
/// Returns the answer's body; throws `ClickHouseError.unreachable` or `.refused`.
public protocol ClickHouseTransport: AnyObject {
    func execute(query: String, body: UnsafeRawBufferPointer) throws(ClickHouseError) -> [UInt8]
}

extension ClickHouseTransport {
    public func execute(_ query: String) throws(ClickHouseError) -> [UInt8] {
        try execute(query: query, body: UnsafeRawBufferPointer(start: nil, count: 0))
    }
}

public struct ClickHouseSinkSettings: Sendable {
    /// `db.table` the rows go into (a shard's local table, or the Distributed one).
    public var table: String = "contid.events_local"
    public var format: ClickHouseRowFormat = .rowBinary
    public var batchRows: Int = 10_000
    public var batchBytes: Int = 16 << 20
    /// A batch older than this is sent at the next flush.
    public var batchInterval: Duration = .seconds(1)
    /// Spool directory for batches the server did not take; nil: they are lost (counted).
    public var spoolDirectory: String?
    public var spoolLimitBytes: Int = 1 << 30
    /// After a failure, how long before the server is tried again.
    public var retryInterval: Duration = .seconds(1)
    /// The host name of events whose records carry no `node=`.
    public var host: String = ""
    public init() {}
}

public struct ClickHouseSinkCounters: Sendable, Equatable {
    /// Rows the server took (batches answered 200).
    public var rowsSent = 0
    public var batchesSent = 0
    /// Batches written to the spool, and sent from it later.
    public var batchesSpooled = 0
    public var batchesResent = 0
    /// Rows lost: their batch fitted neither the server nor the spool.
    public var rowsLost = 0
    /// Events lost before the pipeline (sequence gaps), as the pipeline reported them.
    public var eventsLostUpstream = 0
    /// Failed sends.
    public var sendErrors = 0
    public init() {}
}

public final class ClickHouseSink: EventSink {
    public let settings: ClickHouseSinkSettings
    public let transport: ClickHouseTransport
    /// Labels of containers (the trail's CONTAINER_INFO records feed it).
    public let labels: ContainerLabelBook
    public private(set) var counters = ClickHouseSinkCounters()
    public private(set) var lastError: ClickHouseError?
    /// Told of each failed send or spool problem (the daemon logs them).
    public var onError: ((ClickHouseError) -> Void)?

    private var writer: ClickHouseRowWriter
    private var batch: [UInt8] = []
    private var batchRowCount = 0
    private var batchStarted: ContinuousClock.Instant?
    private var retryAt: ContinuousClock.Instant?
    private let hostBytes: [UInt8]
    private let insert: String
    /// Spooled batches, oldest first: (file name, rows, bytes).
    private var spool: [(name: String, rows: Int, bytes: Int)] = []
    private var spoolBytes = 0
    private var nextSpoolNumber = 1

    public init(settings: ClickHouseSinkSettings, transport: ClickHouseTransport,
                labels: ContainerLabelBook = ContainerLabelBook()) throws(ClickHouseError) {
        self.settings = settings
        self.transport = transport
        self.labels = labels
        writer = ClickHouseRowWriter(format: settings.format)
        hostBytes = Array(settings.host.utf8)
        insert = "INSERT INTO \(settings.table) (\(ClickHouseColumns.list)) FORMAT \(settings.format.rawValue)"
        batch.reserveCapacity(min(settings.batchBytes, 64 << 20) + 65536)
        if let dir = settings.spoolDirectory { try openSpool(dir) }
    }

    /// Rows waiting in memory, and batches waiting in the spool.
    public var pendingRows: Int { batchRowCount }
    public var spooledBatches: Int { spool.count }
    public var spooledRows: Int { spool.reduce(0) { $0 + $1.rows } }

    // MARK: EventSink

    public func accept(_ event: AuditEventView, annotation: EventAnnotation) {
        for i in 0..<event.recordCount where event.header(i).type == .containerInfo {
            let h = event.header(i)
            event.withRecordBytes(i) { labels.learn(containerInfo: UnsafeRawBufferPointer(rebasing: $0[Int(h.bodyStart)..<Int(h.bodyEnd)])) }
        }
        if batchRowCount == 0 { batchStarted = .now }
        writer.appendRow(event, annotation: annotation, host: hostBytes, labels: labels, to: &batch)
        batchRowCount += 1
        if batchRowCount >= settings.batchRows || batch.count >= settings.batchBytes { endBatch() }
    }

    public func eventsLost(_ count: Int) { counters.eventsLostUpstream += count }

    /// Sends the batch when it is `batchInterval` old, and the spool when a retry is due.
    public func flush() throws {
        if batchRowCount > 0, let started = batchStarted, ContinuousClock.now - started >= settings.batchInterval {
            endBatch()
        } else if !spool.isEmpty {
            sendSpool()
        }
    }

    /// Sends what is in memory now (spooled when the server does not take it).
    public func close() { if batchRowCount > 0 { endBatch() } }

    /// Sends the spool until it is empty or `deadline` passes; true when empty
    /// (`contid ingest` at the end of its input: the server may be restarting).
    public func drain(until deadline: ContinuousClock.Instant) -> Bool {
        if batchRowCount > 0 { endBatch() }
        while !spool.isEmpty {
            sendSpool(force: true)
            if spool.isEmpty { break }
            if ContinuousClock.now >= deadline { return false }
            let wait = min(settings.retryInterval, deadline - ContinuousClock.now)
            if wait > .zero { sleep(wait) }
        }
        return true
    }

    // MARK: batches

    private func endBatch() {
        let rows = batchRowCount
        batchRowCount = 0
        batchStarted = nil
        defer { batch.removeAll(keepingCapacity: true) }
        sendSpool()
        if spool.isEmpty && retryDue {
            let ok = batch.withUnsafeBytes { send($0) }
            if ok {
                counters.rowsSent += rows
                counters.batchesSent += 1
                return
            }
        }
        spoolBatch(rows: rows)
    }

    private var retryDue: Bool { retryAt.map { ContinuousClock.now >= $0 } ?? true }

    private func send(_ body: UnsafeRawBufferPointer) -> Bool {
        do {
            _ = try transport.execute(query: insert, body: body)
            retryAt = nil
            return true
        } catch {
            counters.sendErrors += 1
            report(error)
            retryAt = .now + settings.retryInterval
            return false
        }
    }

    private func report(_ error: ClickHouseError) {
        lastError = error
        onError?(error)
    }

    // MARK: the spool

    private func openSpool(_ dir: String) throws(ClickHouseError) {
        if mkdir(dir, 0o700) != 0 && errno != EEXIST { throw .spool("mkdir \(dir): \(Self.errnoName(errno))") }
        guard let d = opendir(dir) else { throw .spool("opendir \(dir): \(Self.errnoName(errno))") }
        defer { closedir(d) }
        var found: [(Int, String, Int)] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            // NNNNNNNNNNNNNNNN-ROWS.FORMAT; a batch half written (.tmp) was never taken into the spool.
            guard let dot = name.firstIndex(of: "."), name[name.index(after: dot)...] == settings.format.rawValue,
                  let dash = name.firstIndex(of: "-"), dash < dot,
                  let number = Int(name[..<dash]), let rows = Int(name[name.index(after: dash)..<dot]) else {
                if name.hasSuffix(".tmp") { unlink(dir + "/" + name) }
                continue
            }
            found.append((number, name, rows))
        }
        for (number, name, rows) in found.sorted(by: { $0.0 < $1.0 }) {
            var st = stat()
            guard stat(dir + "/" + name, &st) == 0 else { continue }
            spool.append((name, rows, Int(st.st_size)))
            spoolBytes += Int(st.st_size)
            nextSpoolNumber = max(nextSpoolNumber, number + 1)
        }
    }

    private func spoolBatch(rows: Int) {
        guard let dir = settings.spoolDirectory else { counters.rowsLost += rows; return }
        guard spoolBytes + batch.count <= settings.spoolLimitBytes else {
            counters.rowsLost += rows
            report(.spool("\(dir) holds \(spoolBytes) bytes (limit \(settings.spoolLimitBytes)): \(rows) rows lost"))
            return
        }
        let number = String(nextSpoolNumber)
        let name = String(repeating: "0", count: max(0, 16 - number.count)) + number + "-\(rows).\(settings.format.rawValue)"
        let path = dir + "/" + name
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            counters.rowsLost += rows
            report(.spool("open \(tmp): \(Self.errnoName(errno)); \(rows) rows lost"))
            return
        }
        var ok = batch.withUnsafeBytes { p -> Bool in
            var off = 0
            while off < p.count {
                let n = write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
        let writeErrno = errno
        ok = ok && fdatasync(fd) == 0
        Glibc.close(fd)
        guard ok, rename(tmp, path) == 0 else {
            unlink(tmp)
            counters.rowsLost += rows
            report(.spool("write \(tmp): \(Self.errnoName(writeErrno)); \(rows) rows lost"))
            return
        }
        nextSpoolNumber += 1
        spool.append((name, rows, batch.count))
        spoolBytes += batch.count
        counters.batchesSpooled += 1
    }

    /// Sends spooled batches, oldest first, until one fails (when a retry is due, or `force`).
    private func sendSpool(force: Bool = false) {
        guard !spool.isEmpty, force || retryDue, let dir = settings.spoolDirectory else { return }
        while let first = spool.first {
            let path = dir + "/" + first.name
            guard let body = Self.readFile(path) else {
                report(.spool("read \(path): \(Self.errnoName(errno)); \(first.rows) rows lost"))
                counters.rowsLost += first.rows
                dropFirstSpooled(path)
                continue
            }
            guard body.withUnsafeBytes({ send($0) }) else { return }
            counters.rowsSent += first.rows
            counters.batchesResent += 1
            dropFirstSpooled(path)
        }
    }

    private func dropFirstSpooled(_ path: String) {
        let first = spool.removeFirst()
        spoolBytes -= first.bytes
        unlink(path)
    }

    static func readFile(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { Glibc.close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return out }
            out += chunk[..<n]
        }
    }

    static func errnoName(_ e: Int32) -> String {
        switch e {
        case ENOENT: return "ENOENT"
        case EACCES: return "EACCES"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case EIO: return "EIO"
        case EDQUOT: return "EDQUOT"
        case ENOTDIR: return "ENOTDIR"
        case EEXIST: return "EEXIST"
        default: return "errno \(e) (\(String(cString: strerror(e))))"
        }
    }

    private func sleep(_ d: Duration) {
        var ts = timespec(tv_sec: Int(d.components.seconds), tv_nsec: Int(d.components.attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }
}
