// The sidecar index of a log (`FILE.cidx`): per block of about 1 MiB of the log
// (blocks end at line ends) the first and last stamp, a bitmap of the record
// types and of the keys present (over the file's dictionaries of both), and a
// Bloom filter of the container IDs its CONTAINER_ID records name. `search`
// reads only the blocks that can hold a match, and the blocks whose stamps
// overlap theirs (an event's records share one stamp, so every record of an
// event that matches is read). The index says how many bytes of the log it
// covers and carries hashes of that prefix's first and last 64 KiB: a log that
// was rewritten, truncated or rotated under it makes it stale; one that grew is
// read through the index up to where it ends and whole after. A wrong magic,
// version, length or checksum makes it corrupt. Stale or corrupt, it is ignored
// and said so once: the result is the same, only slower.
//
// Layout (little-endian): "CIDX" u32 version | u64 block bytes | u64 covered bytes
// | u64 head hash | u64 tail hash | u32 keys | u32 types | u32 blocks
// | keys (u16 length, bytes) | types (u16 each)
// | blocks (u64 start, end, first ms, last ms, key bits, type bits, 512 bytes of Bloom filter)
// | u64 FNV-1a of everything before.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import AuditCodec
import ContainerEngine

public struct LogIndexBlock: Equatable, Sendable {
    public var start: UInt64
    public var end: UInt64
    public var firstMilliseconds: UInt64 = .max
    public var lastMilliseconds: UInt64 = 0
    /// Bit i: key i of the dictionary is present; bit 63: a key beyond the 63rd.
    public var keyBits: UInt64 = 0
    public var typeBits: UInt64 = 0
    public var bloom = [UInt8](repeating: 0, count: LogIndex.bloomBytes)

    public init(start: UInt64) {
        self.start = start
        self.end = start
    }

    mutating func addToBloom(_ element: UnsafeRawBufferPointer) {
        let h = LogIndex.fnv(element)
        for k in 0..<3 {
            let bit = Int((h >> (UInt64(k) * 21)) & UInt64(LogIndex.bloomBytes * 8 - 1))
            bloom[bit >> 3] |= 1 << UInt8(bit & 7)
        }
    }

    func bloomMayHold(_ element: [UInt8]) -> Bool {
        let h = element.withUnsafeBytes { LogIndex.fnv($0) }
        for k in 0..<3 {
            let bit = Int((h >> (UInt64(k) * 21)) & UInt64(LogIndex.bloomBytes * 8 - 1))
            if bloom[bit >> 3] & (1 << UInt8(bit & 7)) == 0 { return false }
        }
        return true
    }
}

public struct LogIndexError: Error, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

public struct LogIndex: Equatable, Sendable {
    public static let version: UInt32 = 1
    public static let bloomBytes = 512
    public static let hashWindow = 64 << 10

    public var blockBytes: UInt64
    public var coveredBytes: UInt64 = 0
    public var headHash: UInt64 = 0
    public var tailHash: UInt64 = 0
    public var keys: [[UInt8]] = []
    public var types: [UInt16] = []
    public var blocks: [LogIndexBlock] = []

    public init(blockBytes: UInt64 = 1 << 20) { self.blockBytes = blockBytes }

    public static func sidecarPath(_ log: String) -> String { log + ".cidx" }

    static func fnv(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for c in b { h = (h ^ UInt64(c)) &* 0x100_0000_01b3 }
        return h
    }

    /// The hashes of a log's covered prefix: its first and last 64 KiB.
    static func prefixHashes(_ bytes: UnsafeRawBufferPointer, covered: Int) -> (UInt64, UInt64) {
        let head = UnsafeRawBufferPointer(rebasing: bytes[0..<min(covered, hashWindow)])
        let tail = UnsafeRawBufferPointer(rebasing: bytes[max(0, covered - hashWindow)..<covered])
        return (fnv(head), fnv(tail))
    }

    // MARK: building

    /// Indexes a whole log's bytes.
    public static func build(_ bytes: UnsafeRawBufferPointer, blockBytes: UInt64 = 1 << 20) -> LogIndex {
        var builder = LogIndexBuilder(blockBytes: blockBytes)
        guard let base = bytes.baseAddress else { return builder.finish(bytes) }
        var start = 0
        while start < bytes.count {
            let stop = memchr(base + start, 0x0A, bytes.count - start).map { base.distance(to: UnsafeRawPointer($0)) }
            guard let stop else { break }  // a last line without newline is left to be read whole
            builder.add(line: UnsafeRawBufferPointer(start: base + start, count: stop - start), offset: UInt64(start))
            start = stop + 1
        }
        return builder.finish(bytes)
    }

    // MARK: the file

    public func serialized() -> [UInt8] {
        var out: [UInt8] = Array("CIDX".utf8)
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        u32(Self.version); u64(blockBytes); u64(coveredBytes); u64(headHash); u64(tailHash)
        u32(UInt32(keys.count)); u32(UInt32(types.count)); u32(UInt32(blocks.count))
        for k in keys { u16(UInt16(k.count)); out += k }
        for t in types { u16(t) }
        for b in blocks {
            u64(b.start); u64(b.end); u64(b.firstMilliseconds); u64(b.lastMilliseconds); u64(b.keyBits); u64(b.typeBits)
            out += b.bloom
        }
        let sum = out.withUnsafeBytes { Self.fnv($0) }
        u64(sum)
        return out
    }

    public init(parsing data: [UInt8], path: String) throws(LogIndexError) {
        var p = 0
        func fail(_ why: String) -> LogIndexError { LogIndexError(path: path, reason: "corrupt index (\(why)); ignored") }
        func take(_ n: Int) throws(LogIndexError) -> ArraySlice<UInt8> {
            guard p + n <= data.count else { throw fail("ends at byte \(data.count)") }
            defer { p += n }
            return data[p..<(p + n)]
        }
        func int<T: FixedWidthInteger>(_: T.Type) throws(LogIndexError) -> T {
            let s = try take(MemoryLayout<T>.size)
            var v: T = 0
            for (i, c) in s.enumerated() { v |= T(c) << (8 * i) }
            return v
        }
        guard data.count >= 12, Array(data[0..<4]) == Array("CIDX".utf8) else { throw fail("no CIDX magic") }
        p = 4
        let version = try int(UInt32.self)
        guard version == Self.version else { throw fail("version \(version), this contid reads \(Self.version)") }
        let sum = data.count >= 8 ? data[(data.count - 8)...].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) } : 0
        guard data.withUnsafeBytes({ Self.fnv(UnsafeRawBufferPointer(rebasing: $0[0..<(data.count - 8)])) }) == sum else {
            throw fail("checksum mismatch")
        }
        blockBytes = try int(UInt64.self)
        coveredBytes = try int(UInt64.self)
        headHash = try int(UInt64.self)
        tailHash = try int(UInt64.self)
        let nk = Int(try int(UInt32.self)), nt = Int(try int(UInt32.self)), nb = Int(try int(UInt32.self))
        guard nk <= 64, nt <= 64, nb <= data.count / 560 + 1 else { throw fail("counts out of range") }
        for _ in 0..<nk { let n = Int(try int(UInt16.self)); keys.append(Array(try take(n))) }
        for _ in 0..<nt { types.append(try int(UInt16.self)) }
        for _ in 0..<nb {
            var b = LogIndexBlock(start: try int(UInt64.self))
            b.end = try int(UInt64.self)
            b.firstMilliseconds = try int(UInt64.self)
            b.lastMilliseconds = try int(UInt64.self)
            b.keyBits = try int(UInt64.self)
            b.typeBits = try int(UInt64.self)
            b.bloom = Array(try take(Self.bloomBytes))
            blocks.append(b)
        }
        guard p == data.count - 8 else { throw fail("\(data.count - 8 - p) bytes after the blocks") }
        var last: UInt64 = 0
        for b in blocks {
            guard b.start == last, b.end >= b.start else { throw fail("blocks do not tile the log") }
            last = b.end
        }
        guard last == coveredBytes else { throw fail("blocks end at \(last), the index says \(coveredBytes)") }
    }

    /// Writes the sidecar beside the log (through a temporary file and rename).
    public func write(to path: String) throws(LogReadError) {
        let tmp = path + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LogReadError(path: tmp, errno: errno) }
        let data = serialized()
        var off = 0
        while off < data.count {
            let n = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + off, data.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw LogReadError(path: tmp, errno: e)
            }
            off += n
        }
        close(fd)
        guard rename(tmp, path) == 0 else { throw LogReadError(path: path, errno: errno) }
    }

    // MARK: use

    /// The byte ranges of `log` that can hold a match of the query, or nil to read it whole
    /// (no index, or one that is stale or corrupt: said through `diagnostic`).
    public static func ranges(for log: MappedLog, query: SearchQuery, selection: ContainerSelection?, needles: [[UInt8]],
                              diagnostic: (String) -> Void) -> [Range<Int>]? {
        let path = sidecarPath(log.path)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        close(fd)
        let index: LogIndex
        do { index = try LogIndex(parsing: data, path: path) } catch {
            diagnostic("contid: \(error)")
            return nil
        }
        guard index.isCurrent(for: log.bytes) else {
            diagnostic("contid: \(path): stale index (the log is not the one it was built for); ignored")
            return nil
        }
        return index.ranges(query: query, selection: selection, logSize: log.bytes.count)
    }

    /// True when the log still starts with the bytes this index covers.
    public func isCurrent(for bytes: UnsafeRawBufferPointer) -> Bool {
        guard Int(coveredBytes) <= bytes.count else { return false }
        guard coveredBytes > 0 else { return true }
        let (h, t) = Self.prefixHashes(bytes, covered: Int(coveredBytes))
        return h == headHash && t == tailHash
    }

    public func ranges(query: SearchQuery, selection: ContainerSelection?, logSize: Int) -> [Range<Int>] {
        var keyMask: UInt64?
        if let key = query.key {
            var m: UInt64 = 1 << 63
            for (i, k) in keys.enumerated() where key.isEmpty || k.withUnsafeBytes({ h in key.withUnsafeBytes { FieldScanner.search($0, in: h) } }) != nil {
                m |= 1 << UInt64(i)
            }
            keyMask = m
        }
        var typeMask: UInt64?
        if !query.types.isEmpty {
            var m: UInt64 = 1 << 63
            for (i, t) in types.enumerated() where query.types.contains(AuditRecordType(rawValue: t)) { m |= 1 << UInt64(i) }
            typeMask = m
        }
        let since = query.since.map { $0 * 1000 } ?? 0
        let until = query.until.map { $0 * 1000 + 999 } ?? .max
        let ids = selection.map { Array(Set($0.spans.map(\.id))) }
        var hit = [Bool](repeating: false, count: blocks.count)
        for (i, b) in blocks.enumerated() {
            guard b.firstMilliseconds <= until, b.lastMilliseconds >= since else { continue }
            if let keyMask, b.keyBits & keyMask == 0 { continue }
            if let typeMask, b.typeBits & typeMask == 0 { continue }
            if let ids, !ids.contains(where: { b.bloomMayHold($0) }) { continue }
            hit[i] = true
        }
        // Every block whose stamps overlap a hit block's: the rest of the hit events' records.
        var read = hit
        var spans: [(UInt64, UInt64)] = []
        for (i, b) in blocks.enumerated() where hit[i] { spans.append((b.firstMilliseconds, b.lastMilliseconds)) }
        if !spans.isEmpty {
            spans.sort { $0.0 < $1.0 }
            var merged: [(UInt64, UInt64)] = []
            for s in spans {
                if let l = merged.last, s.0 <= l.1 { merged[merged.count - 1].1 = max(l.1, s.1) } else { merged.append(s) }
            }
            for (i, b) in blocks.enumerated() where !read[i] {
                // Binary search of the merged spans for one that overlaps this block.
                var lo = 0, hi = merged.count
                while lo < hi { let mid = (lo + hi) / 2; if merged[mid].1 < b.firstMilliseconds { lo = mid + 1 } else { hi = mid } }
                if lo < merged.count, merged[lo].0 <= b.lastMilliseconds { read[i] = true }
            }
        }
        var out: [Range<Int>] = []
        for (i, b) in blocks.enumerated() where read[i] {
            let r = Int(b.start)..<Int(b.end)
            if let l = out.last, l.upperBound == r.lowerBound { out[out.count - 1] = l.lowerBound..<r.upperBound } else { out.append(r) }
        }
        if Int(coveredBytes) < logSize {
            let rest = Int(coveredBytes)..<logSize
            if let l = out.last, l.upperBound == rest.lowerBound { out[out.count - 1] = l.lowerBound..<rest.upperBound } else { out.append(rest) }
        }
        return out
    }
}

/// Builds an index line by line: for `contid index` over a whole log, and for contidd as it
/// writes one (the host log hands it each line it wrote and its offset).
public struct LogIndexBuilder {
    public private(set) var index: LogIndex
    private var current: LogIndexBlock
    private var keyNumbers: [[UInt8]: Int] = [:]
    private var typeNumbers: [UInt16: Int] = [:]

    public init(blockBytes: UInt64 = 1 << 20) {
        index = LogIndex(blockBytes: blockBytes)
        current = LogIndexBlock(start: 0)
    }

    /// One line (without its newline) that starts at `offset` of the log.
    public mutating func add(line: UnsafeRawBufferPointer, offset: UInt64) {
        if offset - current.start >= index.blockBytes, current.end > current.start {
            index.blocks.append(current)
            current = LogIndexBlock(start: offset)
        }
        current.end = offset + UInt64(line.count) + 1
        guard case .success(let h) = RecordScanner.scan(line) else { return }
        let ms = h.time.totalMilliseconds
        current.firstMilliseconds = min(current.firstMilliseconds, ms)
        current.lastMilliseconds = max(current.lastMilliseconds, ms)
        current.typeBits |= bit(forType: h.type.rawValue)
        let body = UnsafeRawBufferPointer(rebasing: line[Int(h.bodyStart)..<Int(h.bodyEnd)])
        if let r = FieldScanner.valueRange(of: "key", in: body) {
            for k in Self.keys(UnsafeRawBufferPointer(rebasing: body[r])) { current.keyBits |= bit(forKey: k) }
        }
        if h.type == .containerID || h.type == .containerOp || h.type == .containerInfo || h.type == .containerLost,
           let r = FieldScanner.valueRange(of: "contid", in: body) {
            let v = UnsafeRawBufferPointer(rebasing: body[r])
            var i = 0
            while i < v.count {
                var j = i
                while j < v.count, v[j] != UInt8(ascii: ",") { j += 1 }
                let s = i < j && v[i] == UInt8(ascii: "^") ? i + 1 : i
                current.addToBloom(UnsafeRawBufferPointer(rebasing: v[s..<j]))
                i = j + 1
            }
        }
    }

    /// The finished index of the log whose bytes were added (their hashes make it checkable).
    public mutating func finish(_ bytes: UnsafeRawBufferPointer) -> LogIndex {
        var out = snapshot()
        if out.coveredBytes > 0 { (out.headHash, out.tailHash) = LogIndex.prefixHashes(bytes, covered: Int(out.coveredBytes)) }
        return out
    }

    /// The index so far, without its hashes.
    public func snapshot() -> LogIndex {
        var out = index
        if current.end > current.start { out.blocks.append(current) }
        out.coveredBytes = out.blocks.last?.end ?? 0
        return out
    }

    /// Blocks completed so far.
    public var completedBlocks: Int { index.blocks.count }

    private mutating func bit(forType t: UInt16) -> UInt64 {
        if let n = typeNumbers[t] { return 1 << UInt64(n) }
        guard index.types.count < 63 else { return 1 << 63 }
        typeNumbers[t] = index.types.count
        index.types.append(t)
        return 1 << UInt64(index.types.count - 1)
    }

    private mutating func bit(forKey k: [UInt8]) -> UInt64 {
        if let n = keyNumbers[k] { return 1 << UInt64(n) }
        guard index.keys.count < 63, k.count < 1024 else { return 1 << 63 }
        keyNumbers[k] = index.keys.count
        index.keys.append(k)
        return 1 << UInt64(index.keys.count - 1)
    }

    /// A key= value's keys: quoted as written, `(null)` as written, hex decoded and split at 0x01.
    static func keys(_ v: UnsafeRawBufferPointer) -> [[UInt8]] {
        if v.count >= 2, v[0] == UInt8(ascii: "\"") { return [Array(v[1..<(v.count - 1)])] }
        if v.first == UInt8(ascii: "(") { return [Array(v)] }
        guard let d = AuditText.unhex(Array(v)) else { return [Array(v)] }
        return d.split(separator: 0x01).map { Array($0) }
    }
}

/// contidd's sidecar index, kept as the host log writes: fed every byte written, it rewrites
/// `audit.log.cidx` each time a block is complete and when the log rotates (then the sidecars
/// move with their logs: `audit.log.1.cidx` is `audit.log.1`'s). A log it did not see from its
/// first byte (contidd started on a log that had lines, or an outside rotation) gets no index
/// until the next rotation: search then reads that file whole.
public final class LogIndexWriter: HostLogObserver {
    public let logPath: String
    let blockBytes: UInt64
    var builder: LogIndexBuilder
    var enabled: Bool
    var expected = 0          // the file offset the next write should start at
    var partial: [UInt8] = [] // a line not yet ended
    var head: [UInt8] = []    // the file's first 64 KiB (of whole lines)
    var tail: [UInt8] = []    // the last 64 KiB or more of whole lines
    var written = 0           // blocks in the sidecar on disk
    /// The last error writing the sidecar (not fatal: search reads the log whole without it).
    public private(set) var lastError: Error?

    public init(logPath: String, existingSize: Int, blockBytes: UInt64 = 1 << 20) {
        self.logPath = logPath
        self.blockBytes = blockBytes
        builder = LogIndexBuilder(blockBytes: blockBytes)
        enabled = existingSize == 0
    }

    public func wrote(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard enabled, offset == expected else { enabled = false; return }
        expected = offset + bytes.count
        var start = 0
        while start < bytes.count {
            guard let nl = bytes[start...].firstIndex(of: 0x0A) else {
                partial += bytes[start...]
                break
            }
            let lineStart = offset + start - partial.count
            partial += bytes[start..<nl]
            partial.withUnsafeBytes { builder.add(line: $0, offset: UInt64(lineStart)) }
            remember(partial)
            partial.removeAll(keepingCapacity: true)
            start = nl + 1
        }
        if builder.completedBlocks > written { save() }
    }

    private func remember(_ line: [UInt8]) {
        if head.count < LogIndex.hashWindow { head += line.prefix(LogIndex.hashWindow - head.count); if head.count < LogIndex.hashWindow { head.append(0x0A) } }
        tail += line
        tail.append(0x0A)
        if tail.count > 2 * LogIndex.hashWindow { tail.removeFirst(tail.count - LogIndex.hashWindow) }
    }

    /// Writes the sidecar for what the log holds so far.
    public func save() {
        guard enabled else { return }
        var index = builder.snapshot()
        guard index.coveredBytes > 0 else { return }
        let covered = Int(index.coveredBytes)
        let h = Array(head.prefix(min(covered, LogIndex.hashWindow)))
        let t = Array(tail.suffix(min(covered, LogIndex.hashWindow)))
        index.headHash = h.withUnsafeBytes { LogIndex.fnv($0) }
        index.tailHash = t.withUnsafeBytes { LogIndex.fnv($0) }
        do {
            try index.write(to: LogIndex.sidecarPath(logPath))
            written = builder.completedBlocks
        } catch { lastError = error }
    }

    public func rotated(path: String, numLogs: Int) {
        // The log is already path.1: its sidecar is written, then moved as the logs were.
        save()
        let side = LogIndex.sidecarPath(path)
        unlink("\(path).\(numLogs - 1).cidx")
        var k = numLogs - 2
        while k >= 1 { rename("\(path).\(k).cidx", "\(path).\(k + 1).cidx"); k -= 1 }
        if enabled { rename(side, "\(path).1.cidx") } else { unlink(side) }
        reset(enabled: true)
    }

    public func reopened(size: Int) {
        unlink(LogIndex.sidecarPath(logPath))
        reset(enabled: size == 0)
    }

    private func reset(enabled: Bool) {
        builder = LogIndexBuilder(blockBytes: blockBytes)
        self.enabled = enabled
        expected = 0
        partial.removeAll()
        head.removeAll()
        tail.removeAll()
        written = 0
    }
}
