import Foundation
import TestSupport
import Testing
import AuditCodec
import ContainerEngine
@testable import AuditPipeline

/// A server in memory: takes or refuses each statement, and keeps what it was sent.
final class RecordingClickHouse: ClickHouseTransport {
    var refusing = false
    /// Bodies the server took, in order; and every attempt.
    var taken: [[UInt8]] = []
    var attempts = 0
    func execute(query: String, body: UnsafeRawBufferPointer) throws(ClickHouseError) -> [UInt8] {
        attempts += 1
        if refusing { throw .unreachable("memory", reason: "connect(127.0.0.1:1) failed: ECONNREFUSED") }
        #expect(query.hasPrefix("INSERT INTO contid.events_local (host, time, ms, serial, contid, chain,"))
        taken.append(Array(body))
        return []
    }
}

/// The ClickHouse sink without a server: batches by size and age, the spool while the
/// server refuses (in order, bounded, kept across restarts), the row in RowBinary.
@Suite struct ClickHouseSinkTests {
    /// `count` syscall events (SYSCALL + EOE), serials from 100.
    static func lines(_ count: Int, node: String? = nil) -> [String] {
        var out: [String] = []
        let prefix = node.map { "node=\($0) " } ?? ""
        for k in 0..<count {
            let stamp = "msg=audit(1764633600.\(String(format: "%03d", k % 1000)):\(100 + k))"
            out.append("\(prefix)type=SYSCALL \(stamp): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=0 ppid=1 pid=\(500 + k) auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=3 comm=\"sh\" exe=\"/bin/sh\" key=\"exec\"")
            out.append("\(prefix)type=EOE \(stamp): ")
        }
        return out
    }

    static func run(_ lines: [String], into sink: ClickHouseSink) {
        let pipeline = EventPipeline(ordered: true, sinks: [sink])
        for l in lines {
            var bytes = Array(l.utf8)
            bytes.withUnsafeMutableBytes { _ = pipeline.push(line: UnsafeRawBufferPointer($0)) }
        }
        pipeline.finish()
    }

    static func settings(rows: Int, spool: String? = nil) -> ClickHouseSinkSettings {
        var s = ClickHouseSinkSettings()
        s.batchRows = rows
        s.batchInterval = .seconds(3600)
        s.retryInterval = .zero
        s.spoolDirectory = spool
        s.host = "h1"
        return s
    }

    static func spoolFiles(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    }

    @Test func batchesAreSentBySizeAndTheRestAtClose() throws {
        let server = RecordingClickHouse()
        let sink = try ClickHouseSink(settings: Self.settings(rows: 10), transport: server)
        Self.run(Self.lines(25), into: sink)
        #expect(server.taken.count == 2)
        sink.close()
        #expect(server.taken.count == 3)
        #expect(sink.counters.rowsSent == 25)
        #expect(sink.counters.batchesSent == 3)
        #expect(sink.counters.rowsLost == 0)
    }

    @Test func anOldBatchIsSentAtAFlushAndAYoungOneWaits() throws {
        let server = RecordingClickHouse()
        var settings = Self.settings(rows: 1000)
        settings.batchInterval = .milliseconds(30)
        let sink = try ClickHouseSink(settings: settings, transport: server)
        Self.run(Self.lines(5), into: sink)
        try sink.flush()
        #expect(server.taken.isEmpty)
        let deadline = ContinuousClock.now + .seconds(10)
        while server.taken.isEmpty && ContinuousClock.now < deadline {
            usleep(5000)
            try sink.flush()
        }
        #expect(server.taken.count == 1)
        #expect(sink.counters.rowsSent == 5)
    }

    @Test func refusedBatchesAreSpooledAndSentAgainInOrderBeforeNewerOnes() throws {
        let dir = makeTemporaryDirectory("ch-spool")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // The bodies a server that takes everything gets, to compare with.
        let reference = RecordingClickHouse()
        let refSink = try ClickHouseSink(settings: Self.settings(rows: 10), transport: reference)
        Self.run(Self.lines(40), into: refSink)
        refSink.close()
        #expect(reference.taken.count == 4)

        let server = RecordingClickHouse()
        server.refusing = true
        let sink = try ClickHouseSink(settings: Self.settings(rows: 10, spool: dir), transport: server)
        let lines = Self.lines(40)
        Self.run(Array(lines[0..<60]), into: sink)  // 30 events: 3 batches, all refused
        #expect(sink.counters.batchesSpooled == 3)
        #expect(try Self.spoolFiles(dir) == [
            "0000000000000001-10.RowBinary", "0000000000000002-10.RowBinary", "0000000000000003-10.RowBinary",
        ])
        #expect(sink.lastError == .unreachable("memory", reason: "connect(127.0.0.1:1) failed: ECONNREFUSED"))
        server.refusing = false
        Self.run(Array(lines[60...]), into: sink)  // the 4th batch: the spool goes first
        sink.close()
        #expect(server.taken == reference.taken)
        #expect(try Self.spoolFiles(dir).isEmpty)
        #expect(sink.counters.rowsSent == 40)
        #expect(sink.counters.batchesResent == 3)
        #expect(sink.counters.rowsLost == 0)
    }

    @Test func theSpoolOfAStoppedSinkIsSentByTheNextOne() throws {
        let dir = makeTemporaryDirectory("ch-spool")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = RecordingClickHouse()
        server.refusing = true
        do {
            let sink = try ClickHouseSink(settings: Self.settings(rows: 10, spool: dir), transport: server)
            Self.run(Self.lines(20), into: sink)
            sink.close()
            #expect(sink.spooledRows == 20)
        }
        // A batch half written when the process died is not in the spool.
        FileManager.default.createFile(atPath: dir + "/0000000000000009-10.RowBinary.tmp", contents: Data([1, 2]))
        server.refusing = false
        let next = try ClickHouseSink(settings: Self.settings(rows: 10, spool: dir), transport: server)
        #expect(next.spooledBatches == 2)
        #expect(next.drain(until: .now + .seconds(5)))
        #expect(server.taken.count == 2)
        #expect(next.counters.rowsSent == 20)
        #expect(try Self.spoolFiles(dir).isEmpty)
    }

    @Test func batchesBeyondTheSpoolLimitAreLostAndCounted() throws {
        let dir = makeTemporaryDirectory("ch-spool")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = RecordingClickHouse()
        let refSink = try ClickHouseSink(settings: Self.settings(rows: 10), transport: reference)
        Self.run(Self.lines(10), into: refSink)
        refSink.close()
        let oneBatch = try #require(reference.taken.first).count
        let server = RecordingClickHouse()
        server.refusing = true
        var settings = Self.settings(rows: 10, spool: dir)
        settings.spoolLimitBytes = oneBatch * 5 / 2  // two batches fit, not three
        let sink = try ClickHouseSink(settings: settings, transport: server)
        Self.run(Self.lines(50), into: sink)
        sink.close()
        #expect(sink.counters.batchesSpooled == 2)
        #expect(sink.counters.rowsLost == 30)
        #expect(sink.spooledRows == 20)
        if case .spool(let m)? = sink.lastError { #expect(m.hasSuffix("10 rows lost")) } else { Issue.record("no spool error: \(String(describing: sink.lastError))") }
    }

    @Test func aRowInRowBinaryHoldsTheEventsColumnsInTheTablesOrder() throws {
        let server = RecordingClickHouse()
        let sink = try ClickHouseSink(settings: Self.settings(rows: 10), transport: server)
        Self.run(Array(Self.lines(1, node: "n7")), into: sink)
        sink.close()
        var body = try #require(server.taken.first)[...]
        func string() -> String {
            var n = 0, shift = 0
            while true { let b = body.removeFirst(); n |= Int(b & 0x7F) << shift; shift += 7; if b < 0x80 { break } }
            defer { body.removeFirst(n) }
            return String(decoding: body.prefix(n), as: UTF8.self)
        }
        func int(_ bytes: Int) -> Int64 {
            var v: UInt64 = 0
            for k in 0..<bytes { v |= UInt64(body.removeFirst()) << (8 * k) }
            let shift = UInt64(64 - 8 * bytes)
            return Int64(bitPattern: v << shift) >> Int64(shift)
        }
        func strings() -> [String] { (0..<Int(int(1))).map { _ in string() } }
        #expect(string() == "n7")
        #expect(UInt32(truncatingIfNeeded: int(4)) == 1764633600)
        #expect(int(2) == 0)
        #expect(int(4) == 100)
        #expect(string() == "")          // contid: none (no attribution here)
        #expect(strings() == [])         // chain
        #expect(strings() == [])         // labels
        #expect(strings() == ["SYSCALL"])  // EOE is not kept
        #expect(string() == "exec")
        #expect(int(4) == 59)
        #expect(int(1) == 1)
        #expect(int(8) == 0)
        #expect(int(4) == 500)
        #expect(int(4) == 1)
        #expect(UInt32(truncatingIfNeeded: int(4)) == 0)
        #expect(UInt32(truncatingIfNeeded: int(4)) == 1000)
        #expect(UInt32(truncatingIfNeeded: int(4)) == 3)
        #expect(string() == "sh")
        #expect(string() == "/bin/sh")
        #expect(string().hasPrefix("node=n7 type=SYSCALL msg=audit(1764633600.000:100): arch=c000003e syscall=59"))
        #expect(body.isEmpty)
    }

    @Test func theTabSeparatedFormEscapesWhatTheFormatReserves() {
        var out: [UInt8] = []
        Array("a\tb\\c\nd'e".utf8).withUnsafeBytes { ClickHouseRowWriter.value($0, format: .tabSeparated, quoted: false, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "a\\tb\\\\c\\nd'e")
        out = []
        Array("it's".utf8).withUnsafeBytes { ClickHouseRowWriter.value($0, format: .tabSeparated, quoted: true, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "'it\\'s'")
        out = []
        Array("q\"\u{1}".utf8).withUnsafeBytes { ClickHouseRowWriter.value($0, format: .jsonEachRow, quoted: false, to: &out) }
        #expect(String(decoding: out, as: UTF8.self) == "\"q\\\"\\u0001\"")
    }
}

@Suite struct ClickHouseEndpointAndQueryTests {
    @Test func urlsGiveHostPortAndCredentials() throws {
        #expect(try ClickHouseEndpoint(url: "http://127.0.0.1:18123/") == ClickHouseEndpoint(host: "127.0.0.1", port: 18123))
        #expect(try ClickHouseEndpoint(url: "http://w:s3cr:t@db.example") == ClickHouseEndpoint(host: "db.example", port: 8123, user: "w", password: "s3cr:t"))
        #expect(try ClickHouseEndpoint(url: "http://[::1]:9/") == ClickHouseEndpoint(host: "::1", port: 9))
        #expect(try ClickHouseEndpoint(url: "http://u:p@h:1/").description == "http://u@h:1/")
        #expect(throws: ClickHouseError.badURL("https://h/", reason: "https is not supported: use a local TLS proxy")) { try ClickHouseEndpoint(url: "https://h/") }
        #expect(throws: ClickHouseError.badURL("http://h:0", reason: "bad port")) { try ClickHouseEndpoint(url: "http://h:0") }
        #expect(throws: ClickHouseError.badURL("http://h/db", reason: "no path expected (give the table with --table)")) { try ClickHouseEndpoint(url: "http://h/db") }
    }

    @Test func searchOptionsBecomeOneStatementThatReadsWithFinal() throws {
        var q = ClickHouseQuery()
        q.contid = try ContainerID(parsing: "42")
        q.nested = true
        q.labels = ["team=it's"]
        q.types = ["EXECVE,CONTAINER_OP"]
        q.keys = ["etc"]
        q.pids = [7]
        q.since = AuditTime(seconds: 100, milliseconds: 5)
        q.until = AuditTime(seconds: 200, milliseconds: 0)
        q.nodes = ["n1"]
        #expect(q.sql(.count) == "SELECT count() FROM contid.events FINAL WHERE has(chain, '42') AND has(labels, 'team=it\\'s')"
                + " AND hasAny(types, ['EXECVE', 'UNKNOWN[1309]', 'CONTAINER_OP', 'UNKNOWN[2900]']) AND (position(key, 'etc') > 0)"
                + " AND pid IN (7) AND time >= toDateTime(100) AND (time > toDateTime(100) OR ms >= 5)"
                + " AND time <= toDateTime(200) AND (time < toDateTime(200) OR ms < 0) AND host IN ('n1') FORMAT TabSeparated")
        var plain = ClickHouseQuery()
        plain.contid = try ContainerID(parsing: "42")
        plain.table = "contid.events_local"
        #expect(plain.sql(.raw) == "SELECT raw FROM contid.events_local FINAL WHERE contid = '42' ORDER BY time, ms, host, serial FORMAT TabSeparatedRaw")
        #expect(ClickHouseQuery().sql(.columns(["serial"]), limit: 3) == "SELECT serial FROM contid.events FINAL WHERE 1 ORDER BY time, ms, host, serial LIMIT 3 FORMAT TabSeparated")
    }
}
